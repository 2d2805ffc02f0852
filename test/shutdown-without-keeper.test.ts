// A driver without a keeper, stopped with SIGTERM while a pod's reader (in a
// mount namespace of its own, so the FUSE connection outlives every mount the
// driver can see) keeps reading the volume: the driver still exits within
// seconds, and the reader gets a clear error (ECONNABORTED, then ENOTCONN),
// never a hang. Nobody serves the volume afterwards: without a keeper there
// is no successor to hand the connection to.

import t from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Harness, NODE, Proc, ROOT, execFileP, sleep, type Tap } from './helpers/harness.js';

interface Round {
  at: number;
  ok?: true;
  err?: string;
}

const rounds = (p: Proc): Round[] =>
  p.out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Round);

/** Every thread's kernel stack: where a process that does not exit is waiting. */
const stacks = (pid: number | undefined): Promise<string> =>
  execFileP('sh', [
    '-c',
    'for t in /proc/$1/task/*; do echo "$t $(cat $t/comm) $(cat $t/wchan)"; cat $t/stack; done',
    'sh',
    String(pid),
  ]).then(
    (o) => o.stdout,
    (e: Error) => e.message,
  );

t.test('SIGTERM ends a driver without a keeper while a pod holds and reads its volume', async (t) => {
  const h = await Harness.start(t as Tap);
  await h.source('s.json', { files: [{ path: 'a', contents: 'secret-a' }] });
  await h.spc('app', 's.json');
  const target = h.target('held');
  await h.publish(h.publishRequest(target, 'app'));

  // unshare execs in place: the child's pid is the reader's, and its mount namespace dies with it.
  const reader = new Proc(
    spawn('unshare', ['--mount', '--propagation', 'private', '--', NODE, join(ROOT, 'test/fixtures/mount-holder.mjs'), target, 'a'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  t.teardown(async () => {
    reader.child.kill('SIGKILL');
    await reader.exited;
  });
  await reader.waitFor(/"ok":true/);

  const started = Date.now();
  h.driver.child.kill('SIGTERM');
  const code = await Promise.race([h.driver.exited, sleep(15_000).then(() => 'still running' as const)]);
  const ms = Date.now() - started;
  if (code === 'still running') {
    const where = await stacks(h.driver.child.pid);
    t.fail(`the driver did not exit within 15 s of SIGTERM\n${where}\n${h.driver.out.slice(-2000)}`);
    h.driver.child.kill('SIGKILL');
    await h.driver.exited;
  } else {
    t.equal(code, 0, 'the driver exited with status 0');
    t.comment(`SIGTERM to exit: ${ms} ms`);
  }
  t.match(h.driver.out, /"msg":"shutting down"/);
  t.match(h.driver.out, /ECONNABORTED.*ENOTCONN|ENOTCONN.*ECONNABORTED/, 'the driver says what readers of the mounts it leaves get');
  // _exit alone would end the process too (the kernel aborts the connection then): the abort must have been made on purpose.
  t.match(h.driver.out, /"abort":"(fusectl|private-namespace|mounted-fusectl)"/, 'the driver aborted the connection before exiting');

  // The reader goes on: its rounds now fail at once with the connection's error.
  const exitedAt = Date.now();
  const failing = (): Round[] => rounds(reader).filter((r) => r.at >= exitedAt && r.err);
  const end = Date.now() + 10_000;
  while (failing().length < 5 && Date.now() < end) await sleep(50);
  const after = failing();
  if (after.length < 5)
    t.fail(`the reader hangs: ${after.length} failed rounds in 10 s after the driver exited\n${await stacks(reader.child.pid)}`);
  else t.pass('the reader keeps getting answers after the driver exited');
  t.same(
    [...new Set(after.map((r) => r.err))].filter((e) => e !== 'ECONNABORTED' && e !== 'ENOTCONN'),
    [],
    `readers get ECONNABORTED or ENOTCONN (${[...new Set(after.map((r) => r.err))].join(', ')})`,
  );
  // Never a hang, before the exit either: the longest wait for a round from the SIGTERM on.
  const ats = [
    started,
    ...rounds(reader)
      .map((r) => r.at)
      .filter((at) => at >= started),
  ];
  const longest = Math.max(...ats.slice(1).map((at, i) => at - ats[i]!));
  t.ok(longest < 10_000, `the reader waited at most ${longest} ms for a round`);
  // (A round may still succeed from the kernel's caches for a moment: opens and reads of cached pages need no server.)
  t.comment(`reader rounds after the driver exited: ${rounds(reader).filter((r) => r.at >= exitedAt).length}, failed ${after.length}`);
});
