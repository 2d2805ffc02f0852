// The logger: secret-bearing fields are redacted, and a line logged right
// before the driver leaves with _exit (handover, takeover) reaches stdout even
// when libuv's threadpool is busy, as it is with blocking /dev/fuse reads.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { createLogger } from '../src/observability/log.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p: string): string => path.join(ROOT, 'dist/src', p);
const CANARY = 'canary-log-7f3e9a';

t.test('secret-bearing fields are redacted wherever a caller passes them', async (t) => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  const log = createLogger('info', sink);
  log.info(
    {
      secrets: CANARY,
      attributes: CANARY,
      req: { token: CANARY, contents: CANARY },
      volumeContext: { 'csi.storage.k8s.io/serviceAccount.tokens': CANARY },
    },
    'call',
  );
  await new Promise((r) => setImmediate(r));
  t.equal(lines.length, 1);
  t.notMatch(lines[0]!, CANARY, 'no canary in the line');
  t.match(lines[0]!, /\*\*\*stripped\*\*\*/);
});

t.test('a line logged just before _exit is on stdout, even with the threadpool blocked', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'csi-log-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // One threadpool thread, held by a read of a FIFO nobody writes: an async
  // write would queue behind it forever and die with the process.
  const script = `
    import { execFileSync } from 'node:child_process';
    import { readFile } from 'node:fs';
    const { createLogger } = await import(${JSON.stringify(dist('observability/log.js'))});
    const { loadNative } = await import(${JSON.stringify(dist('native/addon.js'))});
    const fifo = ${JSON.stringify(path.join(dir, 'fifo'))};
    execFileSync('mkfifo', [fifo]);
    readFile(fifo, () => undefined);
    await new Promise((r) => setTimeout(r, 100));
    const log = createLogger('info');
    log.info({ step: 1 }, 'handing over to a new driver');
    loadNative().exitNow(0);
  `;
  const res = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, UV_THREADPOOL_SIZE: '1' },
    timeout: 20_000,
  });
  t.equal(res.status, 0, res.stderr.slice(0, 500));
  t.match(res.stdout, /"msg":"handing over to a new driver"/, 'the last line made it out');
});
