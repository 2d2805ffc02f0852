// Read audit (docs/audit.md): with --audit-reads and a volume that asks for
// it, every open of its files from a real process is one log line (the
// caller's pod and container from its cgroup, uid, pid, file, version; never
// contents) and one count by pod and file; other volumes log nothing, and
// their opens never even reach the driver: audited volumes are served on a
// second FUSE connection, mounted at the first audited publish, so the main
// one keeps the kernel's no_open mode. The cgroup path parsing (both cgroup versions, both kubelet cgroup drivers) is
// tested on its own.

import t from 'tap';
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, readlink, rmdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { readMountInfo } from '../src/mount/mountinfo.js';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { Harness, canary, freePort, grpcCode, mountsUnder, sleep, type Tap } from './helpers/harness.js';
import { podOfCgroupFile, podOfCgroupPath } from '../src/observability/cgroup-pod.js';
import { AUDIT_READS_ATTRIBUTE } from '../src/csi/volume-context.js';

const UID = '0f2b9c1e-5d7a-4c3b-9e8f-112233445566';
const CID = 'a'.repeat(32) + '0123456789abcdef0123456789abcdef';

t.test('cgroup paths: pod uid and container id, both kubelet cgroup drivers', async (t) => {
  const sysd = UID.replace(/-/g, '_');
  const cases: Array<[string, string, string] | [string, null]> = [
    [`/kubepods/burstable/pod${UID}/${CID}`, UID, CID],
    [`/kubepods/besteffort/pod${UID}/${CID}`, UID, CID],
    [`/kubepods/pod${UID}/${CID}`, UID, CID], // guaranteed: no QoS level
    [`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${sysd}.slice/cri-containerd-${CID}.scope`, UID, CID],
    [`/kubepods.slice/kubepods-pod${sysd}.slice/crio-${CID}.scope`, UID, CID],
    [`/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${sysd}.slice/docker-${CID}.scope`, UID, CID],
    [`/kubepods/burstable/pod${UID}`, UID, ''], // the pod's own cgroup (its pause process, say)
    ['/system.slice/containerd.service', null],
    ['/user.slice/user-0.slice/session-1.scope', null],
    [`/pod${UID}/${CID}`, null], // not under kubepods
    ['/', null],
  ];
  for (const [path, uid, cid] of cases) {
    const got = podOfCgroupPath(path);
    if (uid === null) t.equal(got, null, path);
    else t.same(got, { podUid: uid, containerId: cid }, path);
  }
});

t.test('/proc/<pid>/cgroup: cgroup v2, v1 and hybrid files', async (t) => {
  const v2systemd = `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID.replace(/-/g, '_')}.slice/cri-containerd-${CID}.scope\n`;
  t.same(podOfCgroupFile(v2systemd), { podUid: UID, containerId: CID }, 'v2, systemd driver');
  t.same(podOfCgroupFile(`0::/kubepods/burstable/pod${UID}/${CID}\n`), { podUid: UID, containerId: CID }, 'v2, cgroupfs driver');
  const v1 = [
    `12:pids:/kubepods/burstable/pod${UID}/${CID}`,
    `11:cpu,cpuacct:/kubepods/burstable/pod${UID}/${CID}`,
    `1:name=systemd:/kubepods/burstable/pod${UID}/${CID}`,
    '0::/',
    '',
  ].join('\n');
  t.same(podOfCgroupFile(v1), { podUid: UID, containerId: CID }, 'v1 (hybrid), cgroupfs driver');
  const mixed = [`5:memory:/kubepods/burstable/pod${UID}`, `4:pids:/kubepods/burstable/pod${UID}/${CID}`, ''].join('\n');
  t.same(podOfCgroupFile(mixed), { podUid: UID, containerId: CID }, 'a hierarchy naming the container wins over one at the pod');
  t.equal(podOfCgroupFile('12:pids:/\n1:name=systemd:/init.scope\n0::/\n'), null, 'a node process');
  t.equal(podOfCgroupFile(''), null);
});

interface Run {
  pid: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; its pid is what the audit line must name. */
function runChild(cmd: string, args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    c.on('error', reject);
    c.on('close', (code) => resolve({ pid: c.pid!, code, stdout, stderr }));
  });
}

interface AuditLine {
  audit: string;
  pod: string;
  container: string;
  uid: number;
  gid: number;
  pid: number;
  file: string;
  version: string;
  volumePod: string;
  targetPath: string;
}

function auditLines(out: string): AuditLine[] {
  return out
    .split('\n')
    .filter((l) => l.includes('"audit":"open"'))
    .map((l) => JSON.parse(l) as AuditLine);
}

async function auditedOpens(metricsPort: number): Promise<Map<string, number>> {
  const body = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const m = new Map<string, number>();
  for (const line of body.split('\n')) {
    const r = /^secrets_store_audited_opens_total\{(.*)\} (\d+)$/.exec(line);
    if (!r) continue;
    const labels = Object.fromEntries([...r[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    m.set(`${labels.namespace}/${labels.pod} ${labels.file}`, Number(r[2]));
  }
  return m;
}

/** FUSE requests the driver answered, by operation (secrets_store_fuse_requests_total). */
async function fuseRequests(metricsPort: number, op: string): Promise<number> {
  const body = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const r = new RegExp(`^secrets_store_fuse_requests_total\\{op="${op}"\\} (\\d+)$`, 'm').exec(body);
  return r ? Number(r[1]) : 0;
}

/** The source of the mount at `path` (secrets-store@<the connection's mount directory>). */
async function mountSource(path: string): Promise<string | undefined> {
  return (await readMountInfo()).findLast((m) => m.mountPoint === path)?.source;
}

/** A cgroup named like kubelet's under a mounted hierarchy; removed (deepest first) on teardown. */
async function fakePodCgroup(t: Tap, hierarchy: string, path: string): Promise<string> {
  const dirs: string[] = [];
  let at = hierarchy;
  for (const part of path.split('/').filter(Boolean)) {
    at = join(at, part);
    if (!existsSync(at)) {
      await mkdir(at);
      dirs.push(at);
    }
  }
  t.teardown(async () => {
    for (const d of dirs.reverse()) await rmdir(d).catch(() => undefined);
  });
  return at;
}

t.test('every open of an audited volume is one line and one count; contents never logged; other volumes silent', async (t) => {
  const port = await freePort();
  const h = await Harness.start(t as Tap, { driverArgs: ['--audit-reads', `--metrics-addr=127.0.0.1:${port}`] });
  const secret = canary('audit');
  await h.source('s.json', {
    files: [
      { path: 'token', contents: `${secret}\n`, mode: 0o644 },
      { path: 'nested/key', contents: `${secret}-key\n`, mode: 0o644 },
    ],
  });
  // Switched on by the SecretProviderClass's parameters for one volume, by the volume's attributes for another.
  await h.spc('audited', 's.json', { [AUDIT_READS_ATTRIBUTE]: 'true' });
  await h.spc('plain', 's.json');
  const audited = h.target('audited');
  const byAttr = h.target('by-attr');
  const plain = h.target('plain');
  await h.publish(h.publishRequest(audited, 'audited'));
  const attrReq = h.publishRequest(byAttr, 'plain');
  await h.publish({ ...attrReq, volumeContext: { ...attrReq.volumeContext, [AUDIT_READS_ATTRIBUTE]: 'true' } });
  await h.publish(h.publishRequest(plain, 'plain'));
  const version = await readlink(join(audited, '..data'));

  const N = 5;
  const runs: Run[] = [];
  for (let i = 0; i < N; i++) runs.push(await runChild('cat', [join(audited, 'token')]));
  for (let i = 0; i < N; i++) {
    runs.push(await runChild('setpriv', ['--reuid', '1000', '--regid', '1000', '--clear-groups', 'cat', join(audited, 'token')]));
  }
  for (const r of runs) t.equal(r.stdout, `${secret}\n`, 'the reader got the file');
  const nested = await runChild('cat', [join(audited, 'nested/key')]);
  t.equal(nested.code, 0);

  let lines = auditLines(h.driver.out);
  t.equal(lines.length, 2 * N + 1, 'one line per open');
  const token = lines.filter((l) => l.file === 'token');
  t.same(
    token.map((l) => [l.pid, l.uid]),
    runs.map((r, i) => [r.pid, i < N ? 0 : 1000]),
    'each line names the opening process and its uid, in order',
  );
  for (const l of lines) {
    t.equal(l.version, version, 'the version served');
    t.equal(l.volumePod, 'default/pod-a');
    t.equal(l.targetPath, audited);
    t.equal(l.pod, '', 'not in a pod');
  }
  t.equal(lines.filter((l) => l.file === 'nested/key').length, 1);
  t.notOk(h.driver.out.includes(secret), 'contents never reach the log');

  t.equal((await runChild('cat', [join(byAttr, 'token')])).code, 0);
  lines = auditLines(h.driver.out);
  t.equal(lines.length, 2 * N + 2, 'the volume attribute switches it on too');
  t.equal(lines.at(-1)!.targetPath, byAttr);

  for (let i = 0; i < 3; i++) t.equal((await runChild('cat', [join(plain, 'token')])).code, 0);
  t.equal(auditLines(h.driver.out).length, 2 * N + 2, 'opens of a volume without audit are not logged');

  const counts = await auditedOpens(port);
  t.equal(counts.get('default/pod-a token'), 2 * N + 1, 'counted by pod and file (both audited volumes are pod-a)');
  t.equal(counts.get('default/pod-a nested/key'), 1);

  await h.unpublish(audited);
  await h.unpublish(byAttr);
  t.equal((await auditedOpens(port)).size, 0, 'series removed with their volumes');
});

t.test(
  'audited volumes have a connection of their own: an unaudited volume keeps no_open (its opens never reach the driver)',
  async (t) => {
    const port = await freePort();
    const h = await Harness.start(t as Tap, { driverArgs: ['--audit-reads', `--metrics-addr=127.0.0.1:${port}`] });
    const secret = canary('own-connection');
    await h.source('s.json', { files: [{ path: 'token', contents: `${secret}\n`, mode: 0o644 }] });
    await h.spc('audited', 's.json', { [AUDIT_READS_ATTRIBUTE]: 'true' });
    await h.spc('plain', 's.json');
    const fuseDir = join(h.dir, 'fuse');
    const auditDir = `${fuseDir}-audit`;
    const plain = h.target('own-plain');
    await h.publish(h.publishRequest(plain, 'plain'));
    t.notOk((await mountsUnder(h.dir)).includes(auditDir), 'no audit connection before the first audited volume');
    const audited = h.target('own-audited');
    await h.publish(h.publishRequest(audited, 'audited'));
    t.ok((await mountsUnder(h.dir)).includes(auditDir), 'the audit connection is mounted next to the main one');
    t.equal(await mountSource(plain), `secrets-store@${fuseDir}`, 'the unaudited volume is on the main connection');
    t.equal(await mountSource(audited), `secrets-store@${auditDir}`, 'the audited volume is on the audit connection');

    // The main connection's first OPEN is answered ENOSYS (no_open from then on); the audited one's every open is answered.
    t.equal((await runChild('cat', [join(plain, 'token')])).stdout, `${secret}\n`);
    t.equal((await runChild('cat', [join(audited, 'token')])).stdout, `${secret}\n`);
    const opensBefore = await fuseRequests(port, 'open');
    const linesBefore = auditLines(h.driver.out).length;
    const N = 5;
    for (let i = 0; i < N; i++) t.equal((await runChild('cat', [join(plain, 'token')])).code, 0);
    t.equal(await fuseRequests(port, 'open'), opensBefore, 'no open of the unaudited volume reached the driver');
    for (let i = 0; i < N; i++) t.equal((await runChild('cat', [join(audited, 'token')])).code, 0);
    t.equal(await fuseRequests(port, 'open'), opensBefore + N, 'every open of the audited volume reached the driver');
    t.equal(auditLines(h.driver.out).length, linesBefore + N, 'and was logged');

    // The kernel's side: with the driver stopped, the unaudited file still opens and reads (page cache, no OPEN sent).
    process.kill(h.driver.pid, 'SIGSTOP');
    try {
      const r = await runChild('timeout', ['5', 'cat', join(plain, 'token')]);
      t.equal(r.code, 0, 'read with the driver stopped');
      t.equal(r.stdout, `${secret}\n`);
    } finally {
      process.kill(h.driver.pid, 'SIGCONT');
    }

    // Unpublishing the audited volume leaves the audit connection (and the unaudited volume) served.
    await h.unpublish(audited);
    t.equal((await runChild('cat', [join(plain, 'token')])).code, 0);
    const again = h.target('own-audited-2');
    await h.publish(h.publishRequest(again, 'audited'));
    t.equal(await mountSource(again), `secrets-store@${auditDir}`);
    t.equal((await runChild('cat', [join(again, 'token')])).code, 0);
    t.equal(auditLines(h.driver.out).at(-1)?.targetPath, again);
  },
);

t.test('a process in a pod cgroup: the line names its pod uid and container id (cgroupfs and systemd layouts)', async (t) => {
  const h = await Harness.start(t as Tap, { driverArgs: ['--audit-reads'] });
  await h.source('s.json', { files: [{ path: 'token', contents: canary('pod'), mode: 0o644 }] });
  await h.spc('audited', 's.json', { [AUDIT_READS_ATTRIBUTE]: 'true' });
  const target = h.target('pod');
  await h.publish(h.publishRequest(target, 'audited'));

  const layouts = [
    {
      hierarchy: '/sys/fs/cgroup/pids',
      path: (uid: string, cid: string) => `kubepods/burstable/pod${uid}/${cid}`,
    },
    {
      hierarchy: '/sys/fs/cgroup/systemd',
      path: (uid: string, cid: string) =>
        `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${uid.replace(/-/g, '_')}.slice/cri-containerd-${cid}.scope`,
    },
  ];
  for (const l of layouts) {
    if (!existsSync(join(l.hierarchy, 'cgroup.procs'))) {
      t.fail(`no cgroup hierarchy at ${l.hierarchy} (this test needs cgroup v1 hierarchies: see mount | grep cgroup)`);
      continue;
    }
    const podUid = randomUUID();
    const cid = randomBytes(32).toString('hex');
    const dir = await fakePodCgroup(t as Tap, l.hierarchy, l.path(podUid, cid));
    // The shell moves itself into the pod's cgroup, then becomes the reader (same pid).
    const r = await runChild('sh', ['-c', `echo $$ > ${join(dir, 'cgroup.procs')} && exec cat ${join(target, 'token')}`]);
    t.equal(r.code, 0, r.stderr);
    const line = auditLines(h.driver.out).find((x) => x.pid === r.pid);
    t.ok(line, `a line for pid ${r.pid}`);
    t.equal(line?.pod, podUid, `${l.hierarchy}: pod uid`);
    t.equal(line?.container, cid, `${l.hierarchy}: container id`);
  }
});

t.test('without --audit-reads a volume asking for audit is refused, not served unaudited', async (t) => {
  const h = await Harness.start(t as Tap);
  await h.source('s.json', { files: [{ path: 'token', contents: canary('refused'), mode: 0o644 }] });
  await h.spc('audited', 's.json', { [AUDIT_READS_ATTRIBUTE]: 'true' });
  await h.spc('plain', 's.json');
  const target = h.target('refused');
  const err = await h.publish(h.publishRequest(target, 'audited')).then(
    () => null,
    (e: unknown) => e,
  );
  t.equal(grpcCode(err), status.FAILED_PRECONDITION);
  t.match(String((err as Error | null)?.message), /--audit-reads/);
  const plain = h.target('plain');
  await h.publish(h.publishRequest(plain, 'plain'));
  t.equal((await runChild('cat', [join(plain, 'token')])).code, 0);
  t.equal(auditLines(h.driver.out).length, 0);
});

t.test('after a driver crash, the driver taking both connections over audits the same volumes, and only them', async (t) => {
  const port = await freePort();
  const h = await Harness.start(t as Tap, { keeper: true, driverArgs: ['--audit-reads', `--metrics-addr=127.0.0.1:${port}`] });
  await h.source('s.json', { files: [{ path: 'token', contents: canary('takeover'), mode: 0o644 }] });
  await h.spc('audited', 's.json', { [AUDIT_READS_ATTRIBUTE]: 'true' });
  await h.spc('plain', 's.json');
  const audited = h.target('takeover');
  const plain = h.target('takeover-plain');
  await h.publish(h.publishRequest(audited, 'audited'));
  await h.publish(h.publishRequest(plain, 'plain'));
  t.equal((await runChild('cat', [join(audited, 'token')])).code, 0);
  t.equal((await runChild('cat', [join(plain, 'token')])).code, 0);
  t.equal(auditLines(h.driver.out).length, 1);
  t.match(h.keeper!.out, /holding a new audit FUSE connection/, 'the keeper holds the audit connection too');

  await h.driver.stop('SIGKILL');
  await h.startDriver();
  t.match(h.keeper!.out, /"connections":2/, 'both connections handed to the new driver');
  const r = await runChild('cat', [join(audited, 'token')]);
  t.equal(r.code, 0, r.stderr);
  const opens = await fuseRequests(port, 'open');
  for (let i = 0; i < 3; i++) t.equal((await runChild('cat', [join(plain, 'token')])).code, 0);
  t.equal(await fuseRequests(port, 'open'), opens, "the unaudited volume's opens still never reach the driver");
  const lines = auditLines(h.driver.out);
  t.equal(lines.length, 1, 'the new driver logs the audited open, and only that one');
  t.equal(lines[0]?.pid, r.pid);
  t.equal(lines[0]?.file, 'token');
  t.equal(lines[0]?.version, await readlink(join(audited, '..data')));

  // A volume published after the takeover goes on the audit connection taken over, not a new one.
  const later = h.target('takeover-later');
  await h.publish(h.publishRequest(later, 'audited'));
  t.equal(await mountSource(later), await mountSource(audited));
  t.equal((await runChild('cat', [join(later, 'token')])).code, 0);
  t.equal(auditLines(h.driver.out).length, 2);
  t.notMatch(h.driver.out, /mounted the audit FUSE connection/);

  await h.unpublish(audited);
  await h.unpublish(later);
  await h.unpublish(plain);
});

t.test('an upgrade handover (the running driver yields) passes both connections on', async (t) => {
  const h = await Harness.start(t as Tap, { keeper: true, driverArgs: ['--audit-reads'] });
  await h.source('s.json', { files: [{ path: 'token', contents: canary('handover'), mode: 0o644 }] });
  await h.spc('audited', 's.json', { [AUDIT_READS_ATTRIBUTE]: 'true' });
  await h.spc('plain', 's.json');
  const audited = h.target('handover');
  const plain = h.target('handover-plain');
  await h.publish(h.publishRequest(audited, 'audited'));
  await h.publish(h.publishRequest(plain, 'plain'));
  t.equal((await runChild('cat', [join(audited, 'token')])).code, 0);

  const old = h.driver;
  await h.startDriver();
  t.equal(await Promise.race([old.exited, sleep(10_000).then(() => 'timeout' as const)]), 0, 'the old driver handed over and exited');
  t.match(h.driver.out, /"connections":2[^\n]*took over the FUSE connection/, 'the new driver took both connections over');
  const r = await runChild('cat', [join(audited, 'token')]);
  t.equal(r.code, 0, r.stderr);
  t.equal((await runChild('cat', [join(plain, 'token')])).code, 0);
  const lines = auditLines(h.driver.out);
  t.equal(lines.length, 1, 'the new driver audits the audited volume, and only it');
  t.equal(lines[0]?.pid, r.pid);
  await h.unpublish(audited);
  await h.unpublish(plain);
});

t.test('SIGTERM without a keeper ends both connections (aborted, since the targets still mount them)', async (t) => {
  const h = await Harness.start(t as Tap, { driverArgs: ['--audit-reads'] });
  await h.source('s.json', { files: [{ path: 'token', contents: canary('shutdown'), mode: 0o644 }] });
  await h.spc('audited', 's.json', { [AUDIT_READS_ATTRIBUTE]: 'true' });
  await h.spc('plain', 's.json');
  const audited = h.target('shutdown');
  const plain = h.target('shutdown-plain');
  await h.publish(h.publishRequest(audited, 'audited'));
  await h.publish(h.publishRequest(plain, 'plain'));
  const fuseDir = join(h.dir, 'fuse');

  h.driver.child.kill('SIGTERM');
  const code = await Promise.race([h.driver.exited, sleep(15_000).then(() => 'still running' as const)]);
  if (code === 'still running') h.driver.child.kill('SIGKILL');
  t.equal(code, 0, 'the driver exited within 15 s');
  t.match(h.driver.out, /"abort":"(fusectl|private-namespace|mounted-fusectl)"/, 'aborted on purpose');
  t.ok(h.driver.out.includes(`"aborted":[${JSON.stringify(fuseDir)},${JSON.stringify(`${fuseDir}-audit`)}]`), 'both connections');
  for (const target of [plain, audited]) {
    const r = await runChild('timeout', ['5', 'stat', '-f', target]);
    t.not(r.code, 0, `${target} is no longer served`);
    t.match(r.stderr, /not connected|connection abort/, 'with the connection error, not a hang');
  }
});
