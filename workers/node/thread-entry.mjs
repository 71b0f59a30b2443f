// Starts the TypeScript compute thread through tsx (a worker thread does not inherit the loader).
import { workerData } from 'node:worker_threads';
import { tsImport } from 'tsx/esm/api';

await tsImport(workerData.entry, import.meta.url);
