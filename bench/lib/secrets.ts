// The example provider's source files and SecretProviderClass manifests the
// bench serves, and the atomic-writer layout baselines are written in.

import { mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface SecretFile {
  readonly path: string;
  readonly contents: Buffer;
}

/** Writes the example provider's source file atomically (temp + rename), so a Mount never sees half of it. */
export async function writeSecretsFile(file: string, files: readonly SecretFile[]): Promise<void> {
  const doc = { files: files.map((f) => ({ path: f.path, contentsBase64: f.contents.toString('base64') })) };
  await writeFile(`${file}.tmp`, JSON.stringify(doc), { mode: 0o600 });
  await rename(`${file}.tmp`, file);
}

/** A SecretProviderClass manifest for --secret-provider-class-dir. */
export async function writeSpc(
  dir: string,
  name: string,
  secretsFile: string,
  provider = 'example',
  extra: Record<string, string> = {},
): Promise<void> {
  await mkdir(dir, { recursive: true });
  const doc = {
    apiVersion: 'secrets-store.csi.x-k8s.io/v1',
    kind: 'SecretProviderClass',
    metadata: { name, namespace: 'bench' },
    spec: { provider, parameters: { secretsFile, ...extra } },
  };
  await writeFile(join(dir, `${name}.json`), JSON.stringify(doc));
}

// The atomic-writer layout (what kubelet's AtomicWriter, and upstream, write on tmpfs).

function tsDirName(d = new Date()): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `..${d.getUTCFullYear()}_${p(d.getUTCMonth() + 1)}_${p(d.getUTCDate())}_${p(d.getUTCHours())}_${p(d.getUTCMinutes())}_${p(d.getUTCSeconds())}.${Math.floor(Math.random() * 2 ** 32)}`;
}

export async function writeAtomicLayout(dir: string, files: readonly SecretFile[]): Promise<void> {
  const ts = tsDirName();
  await mkdir(join(dir, ts), { recursive: true, mode: 0o755 });
  for (const f of files) await writeFile(join(dir, ts, f.path), f.contents, { mode: 0o644 });
  await symlink(ts, join(dir, '..data_tmp'));
  await rename(join(dir, '..data_tmp'), join(dir, '..data'));
  for (const f of files) await symlink(join('..data', f.path), join(dir, f.path));
}
