// Runs a serialised ONNX graph with whichever ORT build the platform provides (onnxruntime-web in
// Node or workerd, onnxruntime-node). Pure TS: only types come from onnxruntime-web.
import type * as ort from 'onnxruntime-web';
import { numel } from './graph';

/** The part of the ORT API every runtime shares (onnxruntime-web, onnxruntime-node). */
export type OrtApi = Pick<typeof ort, 'InferenceSession' | 'Tensor'>;

export type SessionOptions = ort.InferenceSession.SessionOptions;

/** A named tensor for a graph: float32 or int64 data with its dims (row-major). */
export interface Feed {
  data: Float32Array | BigInt64Array;
  dims: readonly number[];
}

export type FeedData = Feed['data'];

export const DEFAULT_SESSION_OPTIONS: Readonly<SessionOptions> = { graphOptimizationLevel: 'all' };

/** One ORT inference session over graph bytes; feeds and outputs are plain typed arrays. */
export class GraphSession {
  private released = false;

  private constructor(
    private readonly ort: OrtApi,
    private readonly session: ort.InferenceSession,
  ) {}

  /** `options` are merged over `{ graphOptimizationLevel: 'all' }`. */
  static async create(ort: OrtApi, bytes: Uint8Array, options: SessionOptions = {}): Promise<GraphSession> {
    const session = await ort.InferenceSession.create(bytes, { ...DEFAULT_SESSION_OPTIONS, ...options });
    return new GraphSession(ort, session);
  }

  /** The inputs the session declares (the serialiser drops inputs no output depends on). */
  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /**
   * Runs the graph. Feeds the session does not declare are ignored; a declared input without a
   * feed is an error. `outputs` defaults to every graph output. Returns data with dims.
   */
  async runWithDims(feeds: Readonly<Record<string, Feed>>, outputs?: readonly string[]): Promise<Record<string, Feed>> {
    if (this.released) throw new Error('GraphSession: run after release()');
    const missing = this.inputNames.filter((name) => !(name in feeds));
    if (missing.length) {
      throw new Error(`GraphSession: missing feed${missing.length > 1 ? 's' : ''} ${missing.map((m) => `'${m}'`).join(', ')} (the graph declares inputs ${this.inputNames.join(', ')})`);
    }
    const wanted = outputs ?? this.outputNames;
    for (const name of wanted) {
      if (!this.outputNames.includes(name)) throw new Error(`GraphSession: no graph output '${name}' (outputs: ${this.outputNames.join(', ')})`);
    }
    const tensors: Record<string, ort.Tensor> = {};
    for (const name of this.inputNames) {
      const feed = feeds[name];
      if (feed.data.length !== numel(feed.dims)) {
        throw new Error(`GraphSession: feed '${name}' has ${feed.data.length} values, dims [${feed.dims.join(',')}] need ${numel(feed.dims)}`);
      }
      tensors[name] =
        feed.data instanceof Float32Array
          ? new this.ort.Tensor('float32', feed.data, feed.dims)
          : new this.ort.Tensor('int64', feed.data, feed.dims);
    }
    const result = await this.session.run(tensors, [...wanted]);
    const out: Record<string, Feed> = {};
    for (const name of wanted) {
      const t = result[name] as ort.Tensor;
      const data = t.data;
      if (!(data instanceof Float32Array) && !(data instanceof BigInt64Array)) {
        throw new Error(`GraphSession: output '${name}' is ${t.type}; only float32 and int64 outputs are supported`);
      }
      out[name] = { data, dims: [...t.dims] };
    }
    return out;
  }

  /** As runWithDims, data only. */
  async run(feeds: Readonly<Record<string, Feed>>, outputs?: readonly string[]): Promise<Record<string, FeedData>> {
    const withDims = await this.runWithDims(feeds, outputs);
    const out: Record<string, FeedData> = {};
    for (const [name, feed] of Object.entries(withDims)) out[name] = feed.data;
    return out;
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.session.release();
  }
}
