// What some tests need from outside the repository, by name. Where one is missing, the tests that
// need it skip with the reason printed (a developer's machine), or, with
// EDGETRAIN_REQUIRE_PREREQUISITES=1 (CI, .ci/run), the file fails naming what is missing and how to
// provide it: a CI machine without Chromium or the data must not pass by skipping.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { it } from 'vitest';
import { CIFAR10_URL, SHARED_ARCHIVE } from '../../cli/dataset';
import { DEV_VOCAB } from '../../cli/embed-captions';

export interface Prerequisite {
  readonly name: string;
  readonly path: string;
  /** How to provide it. */
  readonly provide: string;
}

export const CHROMIUM: Prerequisite = {
  name: 'Chromium',
  path: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  provide: "install Debian's chromium package (as .ci/run does) or set CHROMIUM_PATH to a Chromium binary",
};

export const REAL_CIFAR10: Prerequisite = {
  name: 'the real CIFAR-10 tarball',
  path: path.resolve(SHARED_ARCHIVE),
  provide: `put ${CIFAR10_URL} (or the project's copy) at ../shared/data/cifar-10-binary.tar.gz beside the repository`,
};

export const BERT_VOCAB: Prerequisite = {
  name: 'the bert-base-uncased vocabulary',
  path: DEV_VOCAB,
  provide: "put bert-base-uncased's vocab.txt in ../shared/data/bert-base-uncased beside the repository",
};

export const PREREQUISITES_REQUIRED = process.env.EDGETRAIN_REQUIRE_PREREQUISITES === '1';

/**
 * Whether the tests that need `p` skip: true where it is missing. Where prerequisites are required,
 * a missing one also adds a failing test to the calling file that names it. Call once per file, at
 * its top level.
 */
export function skipWithout(p: Prerequisite): boolean {
  if (existsSync(p.path)) return false;
  const missing = `${p.name} is missing (${p.path} not found): ${p.provide}`;
  if (PREREQUISITES_REQUIRED) {
    it(`has its prerequisite: ${p.name}`, () => {
      throw new Error(`${missing}. EDGETRAIN_REQUIRE_PREREQUISITES=1 makes this a failure, not a skip.`);
    });
  } else {
    console.warn(`${missing}. The tests that need it are skipped (EDGETRAIN_REQUIRE_PREREQUISITES=1 makes this a failure).`);
  }
  return true;
}
