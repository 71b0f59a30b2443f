#!/usr/bin/env node
// The `edgetrain` executable (package.json "bin"): runs the TypeScript CLI through tsx.
import { tsImport } from 'tsx/esm/api';

await tsImport('./main.ts', import.meta.url);
