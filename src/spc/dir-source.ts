// SecretProviderClasses from a directory of YAML (or JSON) manifests, for
// running without a cluster (--secret-provider-class-dir). The directory is
// read again on every lookup, so edits apply to the next publish or poll.

import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { errors } from '../errors.js';
import { SPC_GROUP, SPC_KIND, spcNotFound, type SecretProviderClass, type SpcSource } from './types.js';

export async function loadSpcDir(dir: string): Promise<SecretProviderClass[]> {
  const names = (await readdir(dir)).filter((n) => /\.(ya?ml|json)$/i.test(n)).sort();
  const out: SecretProviderClass[] = [];
  for (const n of names) {
    const text = await readFile(join(dir, n), 'utf8');
    for (const doc of parseAllDocuments(text)) {
      if (doc.errors.length > 0) throw new Error(`${n}: ${doc.errors[0]!.message}`);
      const obj = doc.toJS() as SecretProviderClass | null;
      if (!obj || obj.kind !== SPC_KIND || !obj.apiVersion?.startsWith(`${SPC_GROUP}/`)) continue;
      out.push(obj);
    }
  }
  return out;
}

export class DirSpcSource implements SpcSource {
  constructor(private readonly dir: string) {}

  async get(namespace: string, name: string): Promise<SecretProviderClass> {
    let all: SecretProviderClass[];
    try {
      all = await loadSpcDir(this.dir);
    } catch (e) {
      throw errors.spcUnavailable(
        `failed to get secretproviderclass ${namespace}/${name}, error: reading ${this.dir}: ${(e as Error).message}`, e);
    }
    const hit = all.find((s) => s.metadata?.name === name && (s.metadata?.namespace ?? 'default') === namespace);
    if (!hit) throw spcNotFound(namespace, name);
    return hit;
  }

  async close(): Promise<void> {}
}
