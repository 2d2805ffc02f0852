import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package version as a release tag ("v0.1.0"), found from src/ and dist/src/ alike. */
export function driverVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.version) return `v${pkg.version}`;
    } catch {
      // keep walking up
    }
    const up = dirname(dir);
    if (up === dir) return 'v0.0.0-unknown';
    dir = up;
  }
}
