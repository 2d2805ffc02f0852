// Tests for the csi_native addon (native/src/csi_native.c) through its typed
// loader. Needs `npm run build:native` first. Order matters: the dumpable
// subtest runs last because a non-dumpable process's /proc/self/fdinfo is
// owned by root, which the fd subtests read.

import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
import { findAddonPath, hardenProcess, isLockRefused, isNativeSyscallError, loadNative, type NativeAddon } from '../src/native/addon.js';
import { sleep } from '../testkit/wait.js';
import { skipRest } from './helpers/skip.js';

const EBADF = osConstants.errno.EBADF;
const EMSGSIZE = osConstants.errno.EMSGSIZE;
const O_CLOEXEC = 0o2000000;

const native = loadNative();

function isCloexec(fd: number): boolean {
  const info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  const flags = /^flags:\s+([0-7]+)$/m.exec(info)?.[1];
  if (flags === undefined) throw new Error(`no flags line in fdinfo of ${fd}`);
  return (parseInt(flags, 8) & O_CLOEXEC) !== 0;
}

function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

function vmLckKb(): number {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = /^VmLck:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new Error('no VmLck line in /proc/self/status');
  return Number(kb);
}

function readAllFrom(fd: number, length: number): string {
  const buf = Buffer.alloc(length);
  const n = readSync(fd, buf, 0, length, 0);
  return buf.subarray(0, n).toString('utf8');
}

t.test('loader', async (t) => {
  t.equal(loadNative(), native, 'loadNative caches the module');
  t.type(findAddonPath(import.meta.dirname), 'string', 'addon found walking up from test/');
  t.equal(findAddonPath('/'), undefined, 'walk stops at the filesystem root');
  for (const fn of [
    'lockAll',
    'unlockAll',
    'disableDumpable',
    'isDumpable',
    'dontDump',
    'sendFds',
    'recvFds',
    'dupFd',
    'socketPair',
  ] as const) {
    t.type(native[fn], 'function', `exports ${fn}`);
  }
});

t.test('fd passing over a SOCK_SEQPACKET socketpair', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'csi-native-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'secret.txt');
  const content = 'top secret material\n';
  writeFileSync(file, content);

  const fdsBefore = openFdCount();
  const [a, b] = native.socketPair();
  t.not(a, b);
  t.ok(isCloexec(a) && isCloexec(b), 'socketpair fds are close-on-exec');
  const fileFd = openSync(file, 'r');
  try {
    const payload = Buffer.from('hello fds');
    t.equal(native.sendFds(a, [fileFd], payload), payload.length, 'whole payload sent');

    const { data, fds } = native.recvFds(b, 4, 1024);
    t.equal(data.toString('utf8'), 'hello fds', 'payload received');
    t.equal(fds.length, 1, 'one fd received');
    const received = fds[0]!;
    try {
      t.not(received, fileFd, 'received fd is a new descriptor');
      t.ok(isCloexec(received), 'received fd is close-on-exec');
      t.equal(readAllFrom(received, 256), content, 'reading the received fd gives the file content');
    } finally {
      closeSync(received);
    }

    // Several fds in one message, and a message without fds.
    const dup1 = native.dupFd(fileFd);
    try {
      t.equal(native.sendFds(a, [fileFd, dup1], Buffer.from('two')), 3);
      const two = native.recvFds(b, 2, 16);
      t.equal(two.data.toString(), 'two');
      t.equal(two.fds.length, 2);
      for (const fd of two.fds) {
        t.equal(readAllFrom(fd, 256), content);
        closeSync(fd);
      }
      t.equal(native.sendFds(a, [], Buffer.from('no fds')), 6);
      const none = native.recvFds(b, 2, 16);
      t.equal(none.data.toString(), 'no fds');
      t.same(none.fds, []);
    } finally {
      closeSync(dup1);
    }
  } finally {
    closeSync(fileFd);
    closeSync(a);
    closeSync(b);
  }
  t.equal(openFdCount(), fdsBefore, 'no fd leaked');
});

t.test('recvFds closes what arrived and throws when truncated', async (t) => {
  const [a, b] = native.socketPair();
  const extra = native.dupFd(a);
  try {
    const before = openFdCount();
    native.sendFds(a, [a, extra], Buffer.from('x'));
    t.throws(() => native.recvFds(b, 1, 16), {
      code: 'ERR_SYSCALL',
      errno: EMSGSIZE,
      syscall: 'recvmsg',
      message: /control message truncated/,
    });
    t.equal(openFdCount(), before, 'fds from a truncated control message are closed');

    native.sendFds(a, [extra], Buffer.from('a long message'));
    t.throws(() => native.recvFds(b, 1, 4), {
      code: 'ERR_SYSCALL',
      errno: EMSGSIZE,
      message: /message truncated/,
    });
    t.equal(openFdCount(), before, 'fds from a truncated seqpacket message are closed');

    // With no fds wanted at all, any fd sent is a truncation too.
    native.sendFds(a, [extra], Buffer.from('y'));
    t.throws(() => native.recvFds(b, 0, 16), { code: 'ERR_SYSCALL', errno: EMSGSIZE });
    t.equal(openFdCount(), before);
  } finally {
    closeSync(extra);
    closeSync(a);
    closeSync(b);
  }
});

t.test('recvFds reports end-of-file as empty data', async (t) => {
  const [a, b] = native.socketPair();
  closeSync(a);
  try {
    const eof = native.recvFds(b, 1, 16);
    t.equal(eof.data.length, 0);
    t.same(eof.fds, []);
  } finally {
    closeSync(b);
  }
});

t.test('fd errors', async (t) => {
  const [a, b] = native.socketPair();
  closeSync(a);
  try {
    // `a` is now closed (nothing else opens fds synchronously in between).
    t.throws(() => native.sendFds(a, [b], Buffer.from('x')), {
      name: 'Error',
      code: 'ERR_SYSCALL',
      errno: EBADF,
      syscall: 'sendmsg',
      message: 'sendmsg failed: Bad file descriptor',
    });
    t.throws(() => native.recvFds(a, 1, 16), { code: 'ERR_SYSCALL', errno: EBADF, syscall: 'recvmsg' });
    t.throws(() => native.dupFd(a), { code: 'ERR_SYSCALL', errno: EBADF, syscall: 'fcntl' });

    try {
      native.dupFd(a);
      t.fail('dupFd on a closed fd should throw');
    } catch (err) {
      t.ok(isNativeSyscallError(err), 'isNativeSyscallError recognises the error');
    }

    // Argument validation happens before any syscall.
    t.throws(() => native.sendFds('3' as unknown as number, [], Buffer.from('x')), {
      name: 'TypeError',
      code: 'ERR_INVALID_ARG_TYPE',
    });
    t.throws(() => native.sendFds(b, 'nope' as unknown as number[], Buffer.from('x')), {
      name: 'TypeError',
      code: 'ERR_INVALID_ARG_TYPE',
    });
    t.throws(() => native.sendFds(b, [b], 'x' as unknown as Buffer), {
      name: 'TypeError',
      code: 'ERR_INVALID_ARG_TYPE',
    });
    t.throws(() => native.sendFds(b, [b], Buffer.alloc(0)), { code: 'ERR_INVALID_ARG_VALUE' });
    t.throws(() => native.sendFds(-1, [], Buffer.from('x')), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    t.throws(() => native.sendFds(b, [1.5], Buffer.from('x')), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    t.throws(() => native.sendFds(b, new Array<number>(254).fill(b), Buffer.from('x')), {
      name: 'RangeError',
      code: 'ERR_OUT_OF_RANGE',
    });
    t.throws(() => native.recvFds(b, 254, 16), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    t.throws(() => native.recvFds(b, 1, 0), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    t.throws(() => native.dupFd(undefined as unknown as number), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  } finally {
    closeSync(b);
  }
});

t.test('dontDump', async (t) => {
  t.doesNotThrow(() => native.dontDump(Buffer.from('a small pooled secret')));
  t.doesNotThrow(() => native.dontDump(Buffer.alloc(1024 * 1024 + 123)), 'multi-page buffer');
  t.doesNotThrow(() => native.dontDump(Buffer.alloc(0)), 'empty buffer is a no-op');
  t.throws(() => native.dontDump('not a buffer' as unknown as Buffer), {
    name: 'TypeError',
    code: 'ERR_INVALID_ARG_TYPE',
  });
  t.throws(() => native.dontDump(undefined as unknown as Buffer), { code: 'ERR_INVALID_ARG_TYPE' });
});

t.test('lockAll / unlockAll', async (t) => {
  t.throws(() => native.lockAll('yes' as unknown as boolean), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  try {
    native.lockAll(true);
  } catch (err) {
    if (isLockRefused(err)) {
      skipRest(
        t,
        'VmLck checks',
        'SSCSI_REQUIRE_MLOCK',
        `mlockall not permitted here (no CAP_IPC_LOCK / low RLIMIT_MEMLOCK): ${err.message}`,
      );
      return;
    }
    throw err;
  }
  try {
    t.ok(vmLckKb() > 0, 'VmLck > 0 after lockAll(true)');
  } finally {
    native.unlockAll();
  }
  t.equal(vmLckKb(), 0, 'VmLck is 0 after unlockAll');
});

t.test('hardenProcess reports lock failures instead of throwing', async (t) => {
  const syscallError = (errno: number): Error =>
    Object.assign(new Error('mlockall failed: simulated'), { code: 'ERR_SYSCALL', errno, syscall: 'mlockall' });
  const fake = (lockErrno: number): NativeAddon => ({
    ...native,
    disableDumpable: () => {},
    isDumpable: () => false,
    lockAll: () => {
      throw syscallError(lockErrno);
    },
  });
  const report = hardenProcess(fake(osConstants.errno.ENOMEM), { lockMemory: true });
  t.equal(report.dumpable, false);
  t.equal(report.memoryLocked, false);
  t.match(report.lockError, /mlockall failed: simulated/);
  t.equal(hardenProcess(fake(osConstants.errno.EPERM), { lockMemory: true }).memoryLocked, false);
  t.throws(() => hardenProcess(fake(osConstants.errno.EINVAL), { lockMemory: true }), {
    code: 'ERR_SYSCALL',
    errno: osConstants.errno.EINVAL,
  });
});

t.test('allocSecure: locked, zero-filled pages of its own; survives full GCs', async (t) => {
  const before = vmLckKb();
  const bufs = Array.from({ length: 64 }, () => native.allocSecure(1000, true));
  t.ok(vmLckKb() >= before + 64 * 4, 'each secret buffer is locked (VmLck grew by at least 64 pages)');
  t.equal(bufs[0]!.length, 1000);
  t.ok(
    bufs[0]!.every((b) => b === 0),
    'fresh pages are zero',
  );
  bufs[0]!.write('secret');
  t.equal(bufs[0]!.toString('utf8', 0, 6), 'secret');
  t.equal(native.allocSecure(0, false).length, 0, 'size 0 is allowed');
  t.throws(() => native.allocSecure(-1, true), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => native.allocSecure(10, 'yes' as unknown as boolean), { code: 'ERR_INVALID_ARG_TYPE' });

  // The regression: under mlockall V8 aborts on a full GC. The driver's way
  // (locked secret buffers, no mlockall) must survive GCs and heap churn.
  const script = `
    const { loadNative, secretAllocator } = await import(${JSON.stringify(path.join(ROOT, 'src/native/addon.ts').replace(/\.ts$/, '.js').replace('/src/', '/dist/src/'))});
    const a = secretAllocator(loadNative(), true);
    let keep = [];
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 500; i++) keep.push(a.allocate(512), new Array(1000).fill(round));
      if (round % 2) keep = [];
      globalThis.gc();
    }
    console.log('survived', a.locked);
  `;
  const res = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8' });
  t.equal(res.signal, null, `no crash (${res.stderr.slice(0, 200)})`);
  t.equal(res.status, 0);
  t.match(res.stdout, /survived true/);
});

t.test("forkSyscalls: a child makes the script's syscalls in order, stops at the first failure, and is reaped", async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'csi-fork-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const p = (n: string): string => path.join(dir, n);
  const script = Buffer.from(
    [
      `d${p('v1')}\0`,
      `sv1\0${p('tmp')}\0`,
      `r${p('tmp')}\0${p('data')}\0`,
      `u${p('data')}\0`,
      `x${p('v1')}\0`,
      `d${p('v2')}\0`,
      `d${p('v2')}\0`,
      `d${p('never')}\0`,
    ].join(''),
  );
  const fds = readdirSync('/proc/self/fd').length;
  const [pid, fd] = native.forkSyscalls(script);
  t.ok(pid > 0 && pid !== process.pid, 'a child pid');
  const out: Buffer[] = [];
  const buf = Buffer.alloc(64);
  for (let n; (n = readSync(fd, buf)) > 0;) out.push(Buffer.from(buf.subarray(0, n)));
  closeSync(fd);
  const all = Buffer.concat(out);
  const results = Array.from({ length: all.length / 4 }, (_, i) => all.readInt32LE(i * 4));
  t.same(
    results,
    [0, 0, 0, 0, 0, 0, osConstants.errno.EEXIST],
    'one result per syscall made; the second mkdir of v2 fails and the child stops',
  );
  t.same(readdirSync(dir).sort(), ['v2'], 'mkdir, symlink, rename, unlink, rmdir all made; nothing after the failure');
  let status = -1;
  for (let i = 0; i < 200 && status === -1; i++) {
    status = native.reapChild(pid);
    if (status === -1) await sleep(5);
  }
  t.equal(status, 0, 'the child exited 0 and is reaped');
  t.equal(readdirSync('/proc/self/fd').length, fds, 'no descriptor left behind in the parent');
  t.throws(() => native.forkSyscalls(Buffer.from('q/x\0')), { code: 'ERR_INVALID_ARG_VALUE' }, 'an unknown op');
  t.throws(() => native.forkSyscalls(Buffer.from(`d${p('x')}`)), { code: 'ERR_INVALID_ARG_VALUE' }, 'a path without its NUL');
  t.throws(() => native.forkSyscalls(Buffer.from(`s${p('x')}\0`)), { code: 'ERR_INVALID_ARG_VALUE' }, 'a symlink without its second path');
  t.throws(() => native.forkSyscalls('d/x\0' as unknown as Buffer), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => native.reapChild(0), { code: 'ERR_OUT_OF_RANGE' });
});

t.test('hardenProcess / dumpable (runs last)', async (t) => {
  t.equal(native.isDumpable(), true, 'dumpable before hardening');

  const exitListeners = process.listenerCount('exit');
  const report = hardenProcess(native, { lockMemory: true });
  try {
    t.equal(report.dumpable, false, 'report says not dumpable');
    t.equal(native.isDumpable(), false, 'dumpable went false');
    if (report.memoryLocked) {
      t.equal(report.lockError, undefined);
      t.ok(vmLckKb() > 0, 'memory locked');
      t.equal(process.listenerCount('exit'), exitListeners + 1, 'exit listener unlocks memory');
    } else {
      t.type(report.lockError, 'string', `lock failed and was reported: ${report.lockError}`);
    }
  } finally {
    // The registered exit listener would do this too; unlock now so the rest
    // of this process is unaffected.
    native.unlockAll();
  }

  const again = hardenProcess(native, { lockMemory: false });
  t.same(again, { dumpable: false, memoryLocked: false }, 'lockMemory: false only disables dumping');
});

t.test('peerPid: the pid behind a listening stream socket; clear errors otherwise', async (t) => {
  const { createServer } = await import('node:net');
  const dir = mkdtempSync(path.join(tmpdir(), 'peerpid-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sock = path.join(dir, 'p.sock');
  const server = createServer((c) => c.destroy());
  await new Promise<void>((r) => server.listen(sock, () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  t.equal(native.peerPid(sock), process.pid, 'the listening process');
  t.throws(() => native.peerPid(path.join(dir, 'missing.sock')), { code: 'ERR_SYSCALL', syscall: 'connect' });
  t.throws(() => native.peerPid(7 as unknown as string), TypeError);
});
