// The driver's image as the Dockerfile's `driver` stage describes it, built
// from this checkout's files instead of by Docker: the stage's ENV, WORKDIR,
// ENTRYPOINT and COPY lines are read from the Dockerfile (so the two cannot
// drift unnoticed), the Node binary this checkout runs with the shared
// libraries ldd names for it and the addon, and the production dependencies
// (the closure of package.json's dependencies, as `npm prune --omit=dev`
// leaves them). Debian's util-linux/mount of the stage are stood in for by
// busybox's applets (sh, mount, umount, unshare): the driver needs them only
// in fallbacks.

import { existsSync } from 'node:fs';
import { readFile, realpath } from 'node:fs/promises';
import { dirname, join, posix, relative } from 'node:path';
import { execFileP as run } from '../run.js';
import { busyboxFiles, type ImageFile, type ImageSpec } from './oci-image.js';

export class DockerfileDrift extends Error {
  constructor(what: string) {
    super(`Dockerfile's driver stage: ${what} (testkit/node/driver-image.ts does not know how to build this)`);
    this.name = 'DockerfileDrift';
  }
}

export interface DriverStage {
  readonly env: string[];
  readonly workdir: string;
  readonly entrypoint: string[];
  /** COPY --from=build sources (under /app of the build stage) and destinations (relative to WORKDIR, or absolute). */
  readonly copies: Array<{ from: string; to: string }>;
}

/** The `FROM ... AS driver` stage's instructions (no line continuations in the ones read here). */
export function parseDriverStage(dockerfile: string): DriverStage {
  const lines = dockerfile.split('\n');
  const start = lines.findIndex((l) => /^FROM\s+\S+\s+AS\s+driver\s*$/i.test(l));
  if (start < 0) throw new DockerfileDrift('no `FROM ... AS driver`');
  const stage: { env: string[]; workdir: string; entrypoint: string[]; copies: Array<{ from: string; to: string }> } = {
    env: [],
    workdir: '/',
    entrypoint: [],
    copies: [],
  };
  for (const line of lines.slice(start + 1)) {
    if (/^FROM\s/i.test(line)) break;
    const [op, ...rest] = line.trim().split(/\s+/);
    const arg = rest.join(' ');
    if (op === 'ENV') stage.env.push(...rest.map((kv) => (kv.includes('=') ? kv : '')).filter(Boolean));
    else if (op === 'WORKDIR') stage.workdir = arg;
    else if (op === 'ENTRYPOINT') stage.entrypoint = JSON.parse(arg) as string[];
    else if (op === 'COPY') {
      if (rest[0] !== '--from=build' || rest.length !== 3) throw new DockerfileDrift(`unexpected ${line.trim()}`);
      if (!rest[1]!.startsWith('/app/')) throw new DockerfileDrift(`a COPY from outside /app: ${line.trim()}`);
      stage.copies.push({ from: rest[1]!.slice('/app/'.length), to: rest[2]! });
    } else if (op && !op.startsWith('#') && op !== 'RUN' && !line.startsWith(' ')) throw new DockerfileDrift(`unexpected ${op}`);
  }
  if (stage.entrypoint.length === 0) throw new DockerfileDrift('no ENTRYPOINT');
  return stage;
}

/** Directories (relative to root) of the packages package.json's dependencies need, resolved as Node resolves them. */
export async function productionPackages(root: string): Promise<string[]> {
  const seen = new Set<string>();
  const visit = async (pkgDir: string): Promise<void> => {
    const pkg = JSON.parse(await readFile(join(root, pkgDir, 'package.json'), 'utf8')) as Record<string, Record<string, string>>;
    const deps = { ...pkg.dependencies, ...pkg.optionalDependencies };
    for (const name of Object.keys(deps)) {
      let at = '';
      for (let d = pkgDir; ; d = dirname(d)) {
        const c = join(d, 'node_modules', name);
        if (existsSync(join(root, c, 'package.json'))) {
          at = c;
          break;
        }
        if (d === '.' || d === '/') break;
      }
      if (!at) {
        if (pkg.optionalDependencies?.[name]) continue;
        throw new Error(`${name} (needed by ${pkgDir}) is not installed`);
      }
      if (seen.has(at)) continue;
      seen.add(at);
      await visit(at);
    }
  };
  await visit('.');
  return [...seen].sort();
}

/** The shared libraries ldd names for `bin`, at their own paths (the loader included). */
async function sharedLibraries(bin: string): Promise<ImageFile[]> {
  const { stdout } = await run('ldd', [bin]);
  const out: ImageFile[] = [];
  for (const line of stdout.split('\n')) {
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (m) out.push({ path: m[1]!, from: await realpath(m[1]!) });
  }
  return out;
}

/** Without the packages nested in another listed one (copied with it). */
const outermost = (dirs: string[]): string[] => dirs.filter((d) => !dirs.some((o) => d.startsWith(`${o}/`)));

export interface DriverImageOptions {
  readonly ref: string;
  /** The repository: Dockerfile, package.json, dist/src, native/build, node_modules. */
  readonly root: string;
  readonly busybox: string;
}

export async function driverImageSpec(o: DriverImageOptions): Promise<ImageSpec> {
  const stage = parseDriverStage(await readFile(join(o.root, 'Dockerfile'), 'utf8'));
  const node = await realpath(join(o.root, 'node_modules/node/bin/node'));
  const addon = join(o.root, 'native/build/Release/csi_native.node');
  const files: ImageFile[] = [...(await busyboxFiles(o.busybox)), { path: '/usr/local/bin/node', from: node }];
  const libs = new Map<string, ImageFile>();
  for (const f of [...(await sharedLibraries(node)), ...(await sharedLibraries(addon))]) libs.set(f.path, f);
  files.push(...libs.values());
  for (const c of stage.copies) {
    const to = posix.isAbsolute(c.to) ? c.to : posix.join(stage.workdir, c.to === './' ? posix.basename(c.from) : c.to);
    if (c.from === 'node_modules')
      for (const p of outermost(await productionPackages(o.root)))
        files.push({ path: posix.join(to, relative('node_modules', p)), from: join(o.root, p) });
    else {
      if (!existsSync(join(o.root, c.from))) throw new Error(`${c.from} is missing: build first (npx tsc -p .; the addon)`);
      files.push({ path: to, from: join(o.root, c.from), mode: 0o644 });
    }
  }
  // node:24-bookworm-slim's PATH, which the entrypoint's bare `node` is found on.
  const env = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...stage.env];
  return { ref: o.ref, files, env, workdir: stage.workdir, entrypoint: stage.entrypoint };
}
