// `edgetrain export ID`: download a run's inference model (current weights, caption embeddings baked in).
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseCommand } from './args';
import { TARGET_FLAGS, TARGET_USAGE, connectTarget, type Command } from './command';
import { EXIT_CODES_USAGE } from './errors';

const FLAGS = { ...TARGET_FLAGS, out: { type: 'string' } } as const;

const size = (bytes: number) => (bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${(bytes / 1e3).toFixed(1)} kB`);

export const exportCommand: Command = {
  usage: `edgetrain export ID [options]   write the run's inference model (ONNX) with its current weights
  --out FILE             where to write it (default <ID>.onnx)
  The model: input \`image\` [1,3,32,32] (normalised as in training), outputs \`logits\` and \`probabilities\`.
${TARGET_USAGE}
${EXIT_CODES_USAGE}`,
  async run(argv, ctx) {
    const { values: flags, args } = parseCommand(argv, FLAGS, 'export', ['ID']);
    const runId = (ctx.runId = args.ID!);
    const file = path.resolve(flags.out ?? `${runId}.onnx`);
    const api = await connectTarget(flags, ctx, { timeoutMs: 600_000 });
    const model = await api.model(runId);
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, model);
    await rename(tmp, file);
    const shown = path.relative(process.cwd(), file);
    ctx.out.line(`wrote ${shown.startsWith('..') ? file : shown} (${size(model.byteLength)}, run ${runId})`);
    return 0;
  },
};
