// OCI image archives assembled by hand from files on this machine, for the
// real-kubelet suite: one uncompressed layer, a config, a manifest and an
// index naming the image, tarred as an OCI layout that `ctr images import`
// takes. No registry and no image tool are involved.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, copyFile, cp, mkdir, mkdtemp, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execFileP as run } from '../run.js';

export interface ImageFile {
  /** Absolute path inside the image. */
  readonly path: string;
  /** A file of this machine to copy (a directory is copied whole, links followed), or a symlink target when `link` is set. */
  readonly from?: string;
  readonly link?: string;
  readonly mode?: number;
}

export interface ImageSpec {
  /** Full reference, e.g. `sscsi.local/busybox:1`. */
  readonly ref: string;
  readonly files: readonly ImageFile[];
  readonly entrypoint?: readonly string[];
  readonly cmd?: readonly string[];
  readonly env?: readonly string[];
  readonly workdir?: string;
}

const sha256 = (b: Buffer | string): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

async function blob(layout: string, content: Buffer | string): Promise<{ digest: string; size: number }> {
  const buf = typeof content === 'string' ? Buffer.from(content) : content;
  const digest = sha256(buf);
  await writeFile(join(layout, 'blobs', 'sha256', digest.slice(7)), buf);
  return { digest, size: buf.length };
}

/** The layer tar, streamed to a file and hashed there: a Node image is too big for one buffer. */
async function layerBlob(layout: string, rootfs: string): Promise<{ digest: string; size: number }> {
  const tmp = join(layout, 'layer.tar');
  await run('tar', ['--sort=name', '--numeric-owner', '--owner=0', '--group=0', '--mtime=@0', '-C', rootfs, '-cf', tmp, '.']);
  const h = createHash('sha256');
  for await (const chunk of createReadStream(tmp)) h.update(chunk as Buffer);
  const digest = 'sha256:' + h.digest('hex');
  await rename(tmp, join(layout, 'blobs', 'sha256', digest.slice(7)));
  return { digest, size: (await stat(join(layout, 'blobs', 'sha256', digest.slice(7)))).size };
}

/** Writes the image as an OCI layout tar at `archive` (its parent directory must exist). */
export async function buildImageArchive(spec: ImageSpec, archive: string): Promise<void> {
  const work = await mkdtemp(join(dirname(archive), '.image-'));
  try {
    const rootfs = join(work, 'rootfs');
    for (const f of spec.files) {
      const at = join(rootfs, f.path);
      await mkdir(dirname(at), { recursive: true });
      if (f.link !== undefined) await symlink(f.link, at);
      else if ((await stat(f.from!)).isDirectory()) await cp(f.from!, at, { recursive: true, dereference: true });
      else {
        await copyFile(f.from!, at);
        await chmod(at, f.mode ?? 0o755);
      }
    }
    await mkdir(join(rootfs, 'tmp'), { recursive: true, mode: 0o1777 });
    await chmod(join(rootfs, 'tmp'), 0o1777);
    // Sorted, numeric owners, fixed times: the same files make the same digest.
    const layout = join(work, 'layout');
    await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
    const layer = await layerBlob(layout, rootfs);
    const config = await blob(
      layout,
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: {
          Env: spec.env ?? ['PATH=/bin:/usr/bin'],
          ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}),
          ...(spec.cmd ? { Cmd: spec.cmd } : {}),
          ...(spec.workdir ? { WorkingDir: spec.workdir } : {}),
        },
        rootfs: { type: 'layers', diff_ids: [layer.digest] },
      }),
    );
    const manifest = await blob(
      layout,
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
      }),
    );
    await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await writeFile(
      join(layout, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            ...manifest,
            platform: { architecture: 'amd64', os: 'linux' },
            annotations: { 'io.containerd.image.name': spec.ref, 'org.opencontainers.image.ref.name': spec.ref.split(':').pop() },
          },
        ],
      }),
    );
    await run('tar', ['--sort=name', '-C', layout, '-cf', archive, '.']);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The applets a static busybox provides, as symlinks to it under /bin. */
export async function busyboxFiles(busybox: string): Promise<ImageFile[]> {
  const { stdout } = await run(busybox, ['--list']);
  const applets = stdout.split('\n').filter((a) => a && a !== 'busybox');
  return [{ path: '/bin/busybox', from: busybox }, ...applets.map((a) => ({ path: `/bin/${a}`, link: 'busybox' }))];
}
