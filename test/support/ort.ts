// The ORT build unit tests use: onnxruntime-web WASM in Node, one thread (as in the workers).
import { GraphSession, type Feed, type FeedData } from '../../shared/onnx/session';
import { loadOrt } from '../../workers/ort/node';

export const webOrt = () => loadOrt('web', 1);

/** Creates a session for `bytes`, runs it once, releases it. */
export async function runOnce(bytes: Uint8Array, feeds: Record<string, Feed>, outputs?: string[]): Promise<Record<string, FeedData>> {
  const session = await GraphSession.create(await webOrt(), bytes);
  try {
    return await session.run(feeds, outputs);
  } finally {
    await session.release();
  }
}
