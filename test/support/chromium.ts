// Headless Chromium for browser tests: Debian's package (/usr/bin/chromium, installed by .ci/run)
// driven by playwright-core. Tests that launch it skip or fail where it is missing through
// `skipWithout(CHROMIUM)` (./prerequisites).
import { chromium, type Browser } from 'playwright-core';
import { CHROMIUM } from './prerequisites';

/**
 * `--enable-unsafe-webgpu` exposes WebGPU in headless mode; on a machine without a GPU Chromium then
 * offers SwiftShader's software adapter (pages must be served from http://localhost or https to see
 * navigator.gpu at all).
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM.path, headless: true, args: ['--no-sandbox', '--enable-unsafe-webgpu'] });
}
