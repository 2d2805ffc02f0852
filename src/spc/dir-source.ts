// SecretProviderClasses from a directory of YAML (or JSON) manifests, for
// running without a cluster (--secret-provider-class-dir). The directory is
// read again on every lookup, so edits apply to the next publish or poll.
//
// A manifest that cannot be read or parsed is skipped, so one bad file does
// not break every lookup. Its warning names the file and the kind of error,
// never a message of the parser: those quote the offending lines, and a
// manifest may hold credentials in its parameters.

import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as YamlModule from 'yaml';
import { errors } from '../errors.js';
import { SPC_GROUP, SPC_KIND, spcNotFound, type SecretProviderClass, type SpcSource } from './types.js';

// The YAML parser (~70 modules) is loaded at the first lookup, not at start:
// only a driver run with --secret-provider-class-dir needs it.
type Yaml = typeof YamlModule;

/** A manifest left out, and why, in words that quote none of its content. */
export interface SkippedManifest {
  readonly file: string;
  readonly reason: string;
}

export interface SpcDir {
  readonly spcs: SecretProviderClass[];
  readonly skipped: SkippedManifest[];
}

export interface SpcDirLogger {
  warn(obj: object, msg: string): void;
}

/** Where and what, from an error of the YAML parser or of reading the file; never its message. */
function reasonFor(e: unknown, yaml: Yaml): string {
  if (e instanceof yaml.YAMLError) {
    const at = e.linePos?.[0];
    return `not valid YAML (${e.code}${at ? ` at line ${at.line}, column ${at.col}` : ''})`;
  }
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? `cannot be read (${code})` : 'cannot be converted';
}

async function loadManifest(path: string, yaml: Yaml): Promise<SecretProviderClass[]> {
  const out: SecretProviderClass[] = [];
  for (const doc of yaml.parseAllDocuments(await readFile(path, 'utf8'))) {
    if (doc.errors.length > 0) throw doc.errors[0];
    const obj = doc.toJS() as SecretProviderClass | null;
    if (!obj || obj.kind !== SPC_KIND || !obj.apiVersion?.startsWith(`${SPC_GROUP}/`)) continue;
    out.push(obj);
  }
  return out;
}

export async function loadSpcDir(dir: string): Promise<SpcDir> {
  const names = (await readdir(dir)).filter((n) => /\.(ya?ml|json)$/i.test(n)).sort();
  const yaml = await import('yaml');
  const spcs: SecretProviderClass[] = [];
  const skipped: SkippedManifest[] = [];
  for (const n of names) {
    try {
      spcs.push(...(await loadManifest(join(dir, n), yaml)));
    } catch (e) {
      skipped.push({ file: n, reason: reasonFor(e, yaml) });
    }
  }
  return { spcs, skipped };
}

export class DirSpcSource implements SpcSource {
  /** File → reason of the skips already warned about: once per bad state of a file, not per lookup. */
  private warned = new Map<string, string>();

  constructor(
    private readonly dir: string,
    private readonly log?: SpcDirLogger,
  ) {}

  async get(namespace: string, name: string): Promise<SecretProviderClass> {
    let loaded: SpcDir;
    try {
      loaded = await loadSpcDir(this.dir);
    } catch (e) {
      throw errors.spcUnavailable(
        `failed to get secretproviderclass ${namespace}/${name}, error: reading ${this.dir}: ${(e as Error).message}`,
        e,
      );
    }
    this.warnSkipped(loaded.skipped);
    const hit = loaded.spcs.find((s) => s.metadata?.name === name && (s.metadata?.namespace ?? 'default') === namespace);
    if (hit) return hit;
    const notFound = spcNotFound(namespace, name);
    if (loaded.skipped.length === 0) throw notFound;
    // It may be in a skipped file: say which, so the operator looks there.
    throw errors.spcNotFound(
      `${notFound.message} (skipped manifests that could not be read: ${loaded.skipped.map((s) => s.file).join(', ')})`,
    );
  }

  private warnSkipped(skipped: readonly SkippedManifest[]): void {
    const now = new Map(skipped.map((s) => [s.file, s.reason]));
    for (const [file, reason] of now) {
      if (this.warned.get(file) === reason) continue;
      this.log?.warn(
        { file: join(this.dir, file), reason },
        'skipping a SecretProviderClass manifest that cannot be read; the others are still served',
      );
    }
    this.warned = now;
  }

  async close(): Promise<void> {}
}
