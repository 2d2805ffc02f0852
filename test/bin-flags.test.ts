// --help of each binary prints its usage and exits 0 without starting to
// serve: no socket appears, neither at a path given beside --help nor at the
// default path.

import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { NODE, Proc, ROOT, sleep, tempDir, type Tap } from './helpers/harness.js';

const bins = [
  {
    bin: 'keeper.js',
    name: 'secrets-store-csi-keeper',
    socketFlag: '--socket',
    defaultSocket: () => '/var/run/secrets-store-csi-driver/keeper.sock',
    flags: ['--socket', '--lock-memory'],
  },
  {
    bin: 'example-provider.js',
    name: 'secrets-store-example-provider',
    socketFlag: '--endpoint=unix://',
    defaultSocket: () => '/var/run/secrets-store-csi-providers/example.sock',
    flags: ['--endpoint', '--secrets-file'],
  },
  // The driver's default endpoint, unix://tmp/csi.sock, is relative (as upstream's): each run's cwd is the test's directory.
  {
    bin: 'driver.js',
    name: 'secrets-store-csi-driver',
    socketFlag: '--endpoint=unix://',
    defaultSocket: (cwd: string) => join(cwd, 'tmp/csi.sock'),
    flags: ['--endpoint', '--keeper-socket', '--kubelet-registration-path', '--plugin-registration-path'],
  },
];

/** Runs a binary; a process still running after 10 s is killed and reported as 'still running'. */
async function run(args: string[], cwd: string): Promise<{ code: number | null | 'still running'; out: string }> {
  const p = new Proc(spawn(NODE, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] }));
  const code = await Promise.race([p.exited, sleep(10_000).then(() => 'still running' as const)]);
  if (code === 'still running') await p.stop('SIGKILL');
  return { code, out: p.out };
}

for (const b of bins) {
  t.test(`${b.name} --help`, async (t) => {
    const dir = await tempDir(t as Tap);
    const bin = join(ROOT, 'dist/src/bin', b.bin);
    for (const flag of ['--help', '-h']) {
      const sock = join(dir, `${flag.replace(/-/g, '')}.sock`);
      const socketArgs = b.socketFlag.endsWith('//') ? [`${b.socketFlag}${sock}`] : [b.socketFlag, sock];
      const { code, out } = await run([bin, ...socketArgs, flag], dir);
      t.equal(code, 0, `${flag} exits 0`);
      t.match(out, new RegExp(`^Usage of ${b.name}:\n`), `${flag} prints the usage`);
      for (const f of b.flags) t.match(out, `  ${f}`, `the usage lists ${f}`);
      t.notOk(existsSync(sock), `${flag} creates no socket at the path given`);
    }

    // At the default paths too (the ones a real deployment uses): nothing created.
    const defaultSocket = b.defaultSocket(dir);
    const before = existsSync(defaultSocket);
    t.teardown(async () => {
      if (!before) await rm(defaultSocket, { force: true });
    });
    const { code, out } = await run([bin, '--help'], dir);
    t.equal(code, 0, '--help alone exits 0', { output: out.slice(-1000) });
    t.equal(existsSync(defaultSocket), before, `--help alone leaves ${defaultSocket} as it was`);
  });
}
