// FNV-1a over 32-bit little-endian words (then the tail bytes one at a time): about 4x fewer
// multiplies than byte-wise FNV-1a. Each step (xor a word, multiply by an odd prime) is a bijection
// of the state, so inputs of equal length that differ in one word always hash differently.
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function checksum32(bytes: Uint8Array): number {
  const words = bytes.byteLength >>> 2;
  let h = FNV_OFFSET;
  if (LITTLE_ENDIAN_HOST && bytes.byteOffset % 4 === 0) {
    const u32 = new Uint32Array(bytes.buffer, bytes.byteOffset, words);
    for (let i = 0; i < words; i++) h = Math.imul(h ^ u32[i], FNV_PRIME);
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < words; i++) h = Math.imul(h ^ view.getUint32(i * 4, true), FNV_PRIME);
  }
  for (let i = words * 4; i < bytes.byteLength; i++) h = Math.imul(h ^ bytes[i], FNV_PRIME);
  return h >>> 0;
}
