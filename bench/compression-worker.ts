// The compression bench's workerd side: POST a TimingRequest (JSON), get the CaseTiming[] measured
// inside this isolate (bench/compression-kernel.ts), timed with workerd's own clock.
import { timeCompression, type TimingRequest } from './compression-kernel';

export default {
  async fetch(request: Request): Promise<Response> {
    try {
      return Response.json(timeCompression((await request.json()) as TimingRequest));
    } catch (e) {
      return new Response(e instanceof Error ? (e.stack ?? e.message) : String(e), { status: 500 });
    }
  },
};
