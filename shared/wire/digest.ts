// A 64-bit digest of a float vector's exact bytes, as 16 hex digits: two 32-bit multiplicative hashes
// over the same 32-bit words in one pass (one FNV-1a, one with a different prime and a shift mix), so
// it costs about what checksum32 does. Two answers with equal digests carry the same values (up to a
// 2^-64 chance); it is a fingerprint for comparing answers, not a cryptographic hash.
// The words are read in the host's byte order: digests are compared within one runtime.

export function gradientDigest(values: Float32Array): string {
  const words = new Uint32Array(values.buffer, values.byteOffset, values.length);
  let a = 0x811c9dc5;
  let b = 0x9e3779b9 ^ values.length;
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    a = Math.imul(a ^ w, 0x01000193);
    b = Math.imul(b ^ w, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return (a >>> 0).toString(16).padStart(8, '0') + (b >>> 0).toString(16).padStart(8, '0');
}
