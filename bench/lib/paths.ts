// Where the bench finds the compiled driver and its own children.

import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root: this file runs as dist/bench/lib/paths.js. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
