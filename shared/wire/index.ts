export { checksum32 } from './checksum';
export { WireError, FrameWriter, FrameReader, stringBytes, floatsBytes, frameTag, type WireErrorReason } from './frame';
export * from './gradient';
export * from './params';
export * from './embeddings';
export * from './update';
export { LEASE_ID, isLeaseId, leaseIdProblem } from './lease-id';
export { gradientDigest } from './digest';
