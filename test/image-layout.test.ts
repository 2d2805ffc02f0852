// The driver image's runtime stage holds only what the Dockerfile copies from
// the build stage (and production node_modules). No Docker engine runs here,
// so this test assembles that same file set from the Dockerfile's own COPY
// lines into a temp dir (node_modules with `npm ci --omit=dev`, the build
// stage's `npm prune --omit=dev`) and runs the driver, the example provider
// and the keeper from it, with Node 24 as the image's base has it: a publish,
// a read through the mount, and an unpublish. A runtime import of a
// devDependency, or a file the image forgets to copy, fails here.

import t from 'tap';
import { cp, mkdir, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Harness, ROOT, execFileP, tempDir, type Tap } from './helpers/harness.js';

interface CopyLine {
  from: string;
  to: string;
}

/** The final stage's `COPY --from=build <src> <dst>` lines and its ENTRYPOINT. */
function runtimeStage(dockerfile: string): { copies: CopyLine[]; entrypoint: string[]; workdir: string } {
  const lines = dockerfile.split('\n');
  const lastFrom =
    lines
      .map((l, i) => (/^FROM\s/i.test(l) ? i : -1))
      .filter((i) => i >= 0)
      .pop() ?? 0;
  const stage = lines.slice(lastFrom);
  const copies = stage
    .map((l) => /^COPY\s+--from=build\s+(\S+)\s+(\S+)\s*$/i.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ from: m[1]!, to: m[2]! }));
  const ep = stage.map((l) => /^ENTRYPOINT\s+(\[.*\])\s*$/i.exec(l)).find((m) => m !== null);
  const wd = stage.map((l) => /^WORKDIR\s+(\S+)/i.exec(l)).find((m) => m !== null);
  return { copies, entrypoint: ep ? (JSON.parse(ep[1]!) as string[]) : [], workdir: wd?.[1] ?? '/' };
}

t.test("the image's runtime files run the driver: publish, read, unpublish", async (t) => {
  const stage = runtimeStage(await readFile(join(ROOT, 'Dockerfile'), 'utf8'));
  t.ok(stage.copies.length >= 4, 'the runtime stage copies its files from the build stage');
  t.equal(stage.workdir, '/app');
  t.same(stage.entrypoint, ['node', 'dist/src/bin/driver.js'], 'the entrypoint is the driver');

  const app = join(await tempDir(t as Tap, 'sscsi-image-'), 'app');
  await mkdir(app, { recursive: true });
  for (const c of stage.copies) {
    // /app in the build stage is this checkout after `npm ci` and `tsc`.
    const from = join(ROOT, c.from.replace(/^\/app\/?/, ''));
    const to = c.to.startsWith('/') ? c.to.replace(/^\/app/, app) : join(app, c.to);
    if (c.from === '/app/node_modules') {
      // The build stage's `npm prune --omit=dev`, made here from the lock file.
      await cp(join(ROOT, 'package-lock.json'), join(app, 'package-lock.json'));
      await cp(join(ROOT, 'package.json'), join(app, 'package.json'));
      await execFileP('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], {
        cwd: app,
        maxBuffer: 16 * 1024 * 1024,
      });
      continue;
    }
    await stat(from).catch(() => {
      throw new Error(`the Dockerfile copies ${c.from}, which the build does not produce`);
    });
    await mkdir(join(to, '..'), { recursive: true });
    await cp(from, to.endsWith('/') ? join(to, from.split('/').pop()!) : to, { recursive: true });
  }
  const modules = [
    ...(await readdir(join(app, 'node_modules'))),
    ...(await readdir(join(app, 'node_modules/@bufbuild')).catch(() => [])).map((n) => `@bufbuild/${n}`),
  ];
  for (const dev of ['typescript', 'tap', 'node', 'ts-proto', '@bufbuild/buf'])
    t.notOk(modules.includes(dev), `no devDependency ${dev} in the image`);
  t.notOk(modules.includes('.bin') && (await readdir(join(app, 'node_modules/.bin'))).includes('tsc'), 'no TypeScript compiler');

  const { stdout } = await execFileP(process.execPath, [join(app, 'dist/src/bin/driver.js'), '--version'], { cwd: app });
  t.match(stdout, /\d+\.\d+\.\d+/, 'the driver starts from the image files and prints its version');

  const h = await Harness.start(t as Tap, { appRoot: app, keeper: true });
  await h.source('s.json', { files: [{ path: 'pw', contents: 'canary-image' }] });
  await h.spc('app', 's.json');
  const target = h.target('image');
  await h.publish(h.publishRequest(target, 'app'));
  t.equal(await readFile(join(target, 'pw'), 'utf8'), 'canary-image', 'served by the driver run from the image files');
  t.match(h.driver.out, /"msg":"listening"/);
  await h.unpublish(target);
});
