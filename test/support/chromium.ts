// Headless Chromium for browser tests: Debian's package (/usr/bin/chromium, installed by .ci/run)
// driven by playwright-core. Where it is missing, `launchChromium` says so and tests skip themselves
// loudly instead of passing.
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const HAS_CHROMIUM = existsSync(CHROMIUM_PATH);
export const NO_CHROMIUM = `Chromium not found at ${CHROMIUM_PATH} (install Debian's chromium, as .ci/run does, or set CHROMIUM_PATH): browser tests skipped`;

/**
 * `--enable-unsafe-webgpu` exposes WebGPU in headless mode; on a machine without a GPU Chromium then
 * offers SwiftShader's software adapter (pages must be served from http://localhost or https to see
 * navigator.gpu at all).
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: ['--no-sandbox', '--enable-unsafe-webgpu'] });
}
