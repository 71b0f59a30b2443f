// Lease ids are UUIDs (the coordinator issues them with crypto.randomUUID): the API's lease routes and
// the frame decoders accept nothing else.
import { clip } from '../schema/clip';

export const LEASE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export const isLeaseId = (s: string): boolean => LEASE_ID.test(s);

/** Why `s` is not a lease id, quoting at most its start. */
export const leaseIdProblem = (s: string): string => `lease id '${clip(s, 40)}' is malformed: a UUID as the lease carried it`;
