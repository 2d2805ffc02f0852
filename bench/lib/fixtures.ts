// What the sections read and publish: secrets (random canary bytes) in
// /dev/shm with one SPC per purpose, and the same files on a tmpfs of the
// bench's own, plain and in the atomic-writer layout, as baselines.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { canaryBytes } from '../../testkit/canary.js';
import { run } from '../../testkit/run.js';
import type { Fixtures } from './context.js';
import type { BenchEnv } from './env.js';
import { KiB } from './params.js';
import { writeAtomicLayout, writeSecretsFile, writeSpc, type SecretFile } from './secrets.js';

/** Writes the fixtures; mounts the tmpfs at `tmpfsDir` (the caller unmounts it). */
export async function prepareFixtures(env: BenchEnv, tmpfsDir: string): Promise<Fixtures> {
  const readFiles: SecretFile[] = [
    { path: 'secret1k', contents: canaryBytes(KiB, 'read1k') },
    { path: 'secret64k', contents: canaryBytes(64 * KiB, 'read64k') },
  ];
  const pubFiles: SecretFile[] = ['a', 'b', 'c'].map((n) => ({ path: `pub-${n}`, contents: canaryBytes(KiB, `pub${n}`) }));
  const readSecrets = env.shmPath('read.json');
  const pubSecrets = env.shmPath('pub.json');
  const rotSecrets = env.shmPath('rot.json');
  await writeSecretsFile(readSecrets, readFiles);
  await writeSecretsFile(pubSecrets, pubFiles);
  await writeSecretsFile(rotSecrets, [{ path: 'secret1k', contents: canaryBytes(KiB, 'rot0') }]);
  const spcDir = env.path('spc');
  await writeSpc(spcDir, 'read', readSecrets);
  await writeSpc(spcDir, 'pub', pubSecrets);
  await writeSpc(spcDir, 'rot', rotSecrets);
  // The same files written by the provider itself (the AWS provider's default mode), through a write window.
  await writeSpc(spcDir, 'pubw', pubSecrets, 'example-writer', { writeFiles: 'true' });

  await mkdir(tmpfsDir, { recursive: true });
  await run('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0755', 'tmpfs', tmpfsDir]);
  for (const f of [...readFiles, ...pubFiles]) await writeFile(join(tmpfsDir, `plain-${f.path}`), f.contents, { mode: 0o644 });
  await writeAtomicLayout(tmpfsDir, readFiles);

  const providerDir = env.path('providers');
  return { readFiles, pubFiles, pubSecrets, rotSecrets, spcDir, tmpfsDir, providerDir, providerSocket: join(providerDir, 'example.sock') };
}
