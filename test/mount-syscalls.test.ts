// Mount-table changes are syscalls made on threads of the native addon
// (src/mount/commands.ts, native/src/mount_ops.c), not mount(8)/umount(8)
// children: the mount table reads as it did with mount(8), dead mounts behave
// as before, errors read like the command with the OS error, a mount waiting
// on an unanswered FUSE connection never blocks the JS thread, and a driver
// publishing and unpublishing volumes forks nothing.

import t from 'tap';
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fuseSource, SUBTYPE } from '../src/fuse/filesystem.js';
import { bindMount, MountCalls, MountError, mountMethod } from '../src/mount/commands.js';
import { openTargetDir } from '../src/mount/target-open.js';
import { readMountInfo, type MountInfoEntry } from '../src/mount/mountinfo.js';
import { Harness, execFileP, tempDir, type Tap } from './helpers/harness.js';

const at = async (mountPoint: string): Promise<MountInfoEntry[]> => (await readMountInfo()).filter((m) => m.mountPoint === mountPoint);

/** The per-mount options (field 6 of mountinfo), which parseMountInfo leaves out. */
async function mountOptions(mountPoint: string): Promise<string[]> {
  const lines = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n');
  return lines.filter((l) => l.split(' ')[4] === mountPoint).map((l) => l.split(' ')[5] ?? '');
}

/**
 * A FUSE mount nobody serves. Returns what aborts its connection (closing the
 * /dev/fuse fd, as a driver crash does); `dead`: already done.
 */
async function fuseMount(t: Tap, mp: string, dead: boolean, calls = MountCalls.best(), fsname = fuseSource(mp)): Promise<() => void> {
  await mkdir(mp, { recursive: true });
  const fd = openSync('/dev/fuse', 'r+');
  let open = true;
  const abort = (): void => {
    if (open) closeSync(fd);
    open = false;
  };
  t.teardown(async () => {
    abort();
    await execFileP('umount', ['-l', mp]).catch(() => undefined);
  });
  await calls.mountFuse(fd, mp, { fsname, subtype: SUBTYPE });
  if (dead) abort();
  return abort;
}

t.test('the native calls are in use', async (t) => {
  t.not(mountMethod(), 'mount-command', `mount-table changes by syscall (${mountMethod()})`);
});

// Each way the driver can make them: the new mount API, mount(2) alone (a
// kernel or seccomp filter without it), mount(8) (an addon built without them).
const methods = (['mount-api', 'mount-syscall', 'mount-command'] as const).filter((m) => {
  try {
    MountCalls.using(m);
    return true;
  } catch {
    return false;
  }
});

for (const method of methods) {
  const calls = MountCalls.using(method);
  const native = method !== 'mount-command';

  t.test(`${method}: mountinfo shows what mount(8) made: same type, source and options`, async (t) => {
    const dir = await tempDir(t as Tap);
    const ours = join(dir, 'ours');
    await fuseMount(t as Tap, ours, false, calls);
    // The same mount made by mount(8), as the driver did before, for comparison.
    const theirs = join(dir, 'command');
    await fuseMount(t as Tap, theirs, false, MountCalls.using('mount-command'), fuseSource(ours));
    const [a] = await at(ours);
    const [b] = await at(theirs);
    t.equal(a?.fsType, `fuse.${SUBTYPE}`, 'type fuse.<subtype>');
    t.equal(a?.source, fuseSource(ours), 'source: the fsname');
    t.equal(a?.options, b?.options, `superblock options as mount(8)'s: ${a?.options}`);
    t.same(await mountOptions(ours), await mountOptions(theirs), 'mount options as mount(8)');
    t.match((await mountOptions(ours))[0], /nosuid,nodev,noexec/);

    // A bind by path: read-only, nosuid,nodev,noexec; then flipped writable and back.
    const src = join(dir, 'src');
    const target = join(dir, 'target');
    await mkdir(src);
    await mkdir(target);
    await writeFile(join(src, 'f'), 'through the bind');
    await calls.bindMount(src, target);
    t.teardown(() => execFileP('umount', ['-l', target]).catch(() => undefined));
    t.equal(await readFile(join(target, 'f'), 'utf8'), 'through the bind');
    t.match((await mountOptions(target))[0], /^ro,nosuid,nodev,noexec/, 'read-only bind');
    await t.rejects(writeFile(join(target, 'g'), 'x'), { code: 'EROFS' });
    await calls.remountBind(target, true);
    t.match((await mountOptions(target))[0], /^rw,nosuid,nodev,noexec/, 'writable');
    await calls.remountBind(target, false);
    t.match((await mountOptions(target))[0], /^ro,nosuid,nodev,noexec/, 'read-only again');
    await calls.unmount(target);
    t.same(await at(target), [], 'unmounted');

    // Through fds of the directory (O_PATH), as publish does: over a live directory and over a dead mount.
    const dead = join(dir, 'dead');
    await fuseMount(t as Tap, dead, true, calls);
    for (const to of [target, dead]) {
      const under = (await at(to)).length;
      const d = await openTargetDir(to, to);
      const flagsSet = await calls.bindMountAt(src, d.fd, true).finally(() => d.close());
      t.equal(flagsSet, method === 'mount-api', 'flags set with the bind only by the new mount API');
      if (!flagsSet) {
        const root = await openTargetDir(to, to);
        await calls.remountBindAt(root.fd, true).finally(() => root.close());
      }
      t.equal((await at(to)).length, under + 1, `bound at ${to === dead ? 'a dead mount' : 'a directory'}`);
      t.match((await mountOptions(to)).at(-1), /^rw,nosuid,nodev,noexec/, 'writable, as asked');
      t.equal(await readFile(join(to, 'f'), 'utf8'), 'through the bind');
      const root = await openTargetDir(to, to);
      await calls.unmountAt(root.fd).finally(() => root.close());
      t.equal((await at(to)).length, under, 'detached');
    }
  });

  t.test(`${method}: dead mounts: stacked over, unmounted, and a dead source fails with ENOTCONN`, async (t) => {
    const dir = await tempDir(t as Tap);
    const dead = join(dir, 'dead');
    await fuseMount(t as Tap, dead, true, calls);
    await t.rejects(readdir(dead), { code: 'ENOTCONN' }, 'the mount is dead');

    // A new bind over it (what publish does over a dead target): nothing stats the target first.
    const src = join(dir, 'src');
    await mkdir(src);
    await writeFile(join(src, 'f'), 'alive again');
    await calls.bindMount(src, dead);
    t.equal((await at(dead)).length, 2, 'stacked over the dead one');
    t.equal(await readFile(join(dead, 'f'), 'utf8'), 'alive again');
    await calls.unmount(dead);
    await calls.unmount(dead, { lazy: true });
    t.same(await at(dead), [], 'both unmounted');

    // A bind whose source is under a dead mount: the OS error, said like the command.
    const dead2 = join(dir, 'dead2');
    await fuseMount(t as Tap, dead2, true, calls);
    const target = join(dir, 'target');
    await mkdir(target);
    const source = join(dead2, 'vol');
    const e = await calls.bindMount(source, target).catch((x: unknown) => x);
    t.ok(e instanceof MountError, 'a MountError');
    const me = e as MountError;
    t.same(await at(target), [], 'nothing mounted');
    const e2 = (await calls.unmount(target).catch((x: unknown) => x)) as MountError;
    if (!native) {
      t.match(me.message, /^mount -n -c --bind .* failed \(exit 32\): .*Transport endpoint is not connected/);
      t.equal(me.exitCode, 32);
      t.match(e2.message, /^umount -n .* failed \(exit 32\): .*not mounted/);
      return;
    }
    t.equal(
      me.message,
      `mount --bind -o ro,nosuid,nodev,noexec ${source} ${target} failed: Transport endpoint is not connected (ENOTCONN)`,
    );
    t.equal(me.code, 'ENOTCONN');
    t.equal(me.errno, 107);
    t.equal(me.exitCode, null);
    t.equal(e2.message, `umount ${target} failed: Invalid argument (EINVAL)`, 'not a mount point');
  });
}

t.test('a mount waiting on an unanswered FUSE connection leaves the JS thread free', async (t) => {
  const dir = await tempDir(t as Tap);
  const hung = join(dir, 'hung');
  const abort = await fuseMount(t as Tap, hung, false);
  const target = join(dir, 'target');
  await mkdir(target);
  // The lookup of hung/vol waits for an answer to INIT that never comes.
  let settled = false;
  const pending = bindMount(join(hung, 'vol'), target)
    .catch((x: unknown) => x)
    .finally(() => (settled = true));
  const started = Date.now();
  let ticks = 0;
  while (Date.now() - started < 300) {
    await new Promise((r) => setTimeout(r, 10));
    ticks++;
  }
  t.ok(ticks > 10, `timers ran while it waited (${ticks})`);
  t.notOk(settled, 'still waiting');
  abort(); // the lookup fails
  const e = (await pending) as MountError;
  t.ok(e instanceof MountError && ['ENOTCONN', 'ECONNABORTED'].includes(e.code ?? ''), `then it fails: ${e.message}`);
});

/** Minor faults of the reaped children of `pid` (/proc/<pid>/stat field 11): grows with every child process waited for. */
async function childFaults(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[8]);
}

/** The live children of every thread of `pid`. */
async function children(pid: number): Promise<string[]> {
  const out: string[] = [];
  for (const tid of await readdir(`/proc/${pid}/task`).catch(() => [])) {
    const c = await readFile(`/proc/${pid}/task/${tid}/children`, 'utf8').catch(() => '');
    out.push(...c.split(' ').filter(Boolean));
  }
  return out;
}

t.test('publishing and unpublishing volumes spawns no child process', async (t) => {
  // The measure works: a process that ran one child has reaped children's faults.
  const probe = spawn(process.execPath, ['-e', "require('child_process').execFileSync('true'); setTimeout(() => {}, 5000)"], {
    stdio: 'ignore',
  });
  t.teardown(() => probe.kill('SIGKILL'));
  let faults = 0;
  for (let i = 0; i < 100 && faults === 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
    faults = await childFaults(probe.pid!).catch(() => 0);
  }
  t.ok(faults > 0, `a reaped child shows (${faults} faults)`);

  const h = await Harness.start(t as Tap);
  await h.source('s.json', { files: [{ path: 'pw', contents: 'canary-no-children', mode: 0o400 }] });
  await h.spc('app', 's.json');
  // A provider that writes its files: a writable bind, then a remount read-only.
  await h.spc('writes', 's.json', { writeFiles: 'true' });
  t.match(h.driver.out, /"mounts":"mount-(api|syscall)"/, 'the driver makes its mounts by syscall');
  const pid = h.driver.pid;
  // Warm: anything the driver does once at its first publish is not what is counted.
  // The provider's first call writes: the driver then gives every call a window.
  const warm = h.target('warm');
  await h.publish(h.publishRequest(warm, 'writes'));
  await h.unpublish(warm);

  const before = await childFaults(pid);
  const seen = new Set<string>();
  let watching = true;
  const watcher = (async () => {
    while (watching) for (const c of await children(pid)) seen.add(c);
  })();
  const targets = Array.from({ length: 20 }, (_, i) => h.target(`v${i}`));
  try {
    // Windows first (a writable bind, a remount read-only), then a provider that returns its files.
    for (const [i, target] of targets.entries()) await h.publish(h.publishRequest(target, i < 10 ? 'writes' : 'app'));
    t.equal(await readFile(join(targets[0]!, 'pw'), 'utf8'), 'canary-no-children', 'published by a provider that writes');
    t.match((await mountOptions(targets[0]!))[0], /^ro,nosuid,nodev,noexec/, 'read-only after its window');
    t.equal(await readFile(join(targets[19]!, 'pw'), 'utf8'), 'canary-no-children', 'published');
    for (const target of targets) await h.unpublish(target);
  } finally {
    watching = false;
    await watcher;
  }
  t.same([...seen], [], 'no child seen while publishing');
  t.equal(await childFaults(pid), before, 'no child reaped');
});
