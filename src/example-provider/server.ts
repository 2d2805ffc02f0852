// An example provider plugin: a real v1alpha1.CSIDriverProvider gRPC server
// on a unix socket, serving secrets from a local file. It checks what every
// provider can rely on from the driver: the :authority is "localhost", the
// attributes, secrets and permission fields are valid JSON, and target_path
// is set.
//
// SecretProviderClass parameters it understands:
//   secretsFile: path of the source file (default: the --secrets-file flag)
//   objects:     YAML list of {objectName} to select files (default: all)
//   writeFiles:  "true": write the files into target_path itself and return
//                none, the way the AWS provider does by default (temp file,
//                chmod, write, fsync, rename over the final name)

import { randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Server, ServerCredentials, status, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { parse } from 'yaml';
import {
  CSIDriverProviderService,
  type CSIDriverProviderServer,
  type MountRequest,
  type MountResponse,
} from '../gen/provider/v1alpha1/service.js';
import { readSource, versionOf } from './source.js';

export const RUNTIME_NAME = 'secrets-store-example-provider';

export interface ExampleProviderOptions {
  readonly socketPath: string;
  readonly secretsFile?: string;
  readonly version: string;
  readonly log?: (msg: string, fields?: object) => void;
}

function fail(cb: sendUnaryData<MountResponse>, code: status, details: string): void {
  cb({ code, details });
}

export function exampleProvider(o: ExampleProviderOptions): CSIDriverProviderServer {
  return {
    version: (_call, cb) => cb(null, { version: 'v1alpha1', runtimeName: RUNTIME_NAME, runtimeVersion: o.version }),
    mount: (call: ServerUnaryCall<MountRequest, MountResponse>, cb: sendUnaryData<MountResponse>) => {
      void (async () => {
        // Upstream's e2e provider refuses other authorities; so do we, which tests the driver sends it.
        const authority = call.getHost();
        if (authority !== 'localhost') return fail(cb, status.PERMISSION_DENIED, `authority must be localhost, got ${authority}`);
        const req = call.request;
        let attributes: Record<string, string>;
        try {
          attributes = JSON.parse(req.attributes) as Record<string, string>;
          JSON.parse(req.secrets);
          if (typeof JSON.parse(req.permission) !== 'number') throw new Error('permission is not a number');
        } catch (e) {
          return fail(cb, status.INVALID_ARGUMENT, `failed to unmarshal request: ${(e as Error).message}`);
        }
        if (!req.targetPath) return fail(cb, status.INVALID_ARGUMENT, 'missing target path');
        const file = attributes.secretsFile ?? o.secretsFile;
        if (!file) return fail(cb, status.INVALID_ARGUMENT, 'no secrets file: set the secretsFile parameter or --secrets-file');
        const src = await readSource(file);
        if (src.delayMs) await new Promise((r) => setTimeout(r, src.delayMs));
        if (src.grpcError) return fail(cb, src.grpcError.code, src.grpcError.message);
        if (src.errorCode) return cb(null, { objectVersion: [], error: { code: src.errorCode }, files: [] });
        let selected = src.files;
        if (attributes.objects) {
          const wanted = new Set(((parse(attributes.objects) ?? []) as Array<{ objectName?: string }>).map((x) => x.objectName));
          selected = src.files.filter((f) => wanted.has(f.path));
        }
        const defaultMode = Number(JSON.parse(req.permission));
        const files = selected.map((f) => ({ path: f.path, mode: f.mode ?? defaultMode, contents: f.contents }));
        const objectVersion = src.objectVersions ?? selected.map((f) => ({ id: f.path, version: versionOf(f) }));
        if (attributes.writeFiles === 'true') {
          for (const [i, f] of files.entries())
            await writeLikeAws(req.targetPath, f.path, f.mode, f.contents, {
              ...(selected[i]!.truncateTo !== undefined ? { truncateTo: selected[i]!.truncateTo } : {}),
              ...(src.pauseBeforeRenameMs ? { pauseMs: src.pauseBeforeRenameMs, log: o.log } : {}),
            });
          o.log?.('mount', { targetPath: req.targetPath, written: files.length });
          return cb(null, { objectVersion, files: [] });
        }
        o.log?.('mount', { targetPath: req.targetPath, files: files.length, tokens: tokenClaims(attributes) });
        cb(null, { objectVersion, files });
      })().catch((e: unknown) => fail(cb, status.INTERNAL, (e as Error).message));
    },
  };
}

/**
 * Who the service-account tokens kubelet passed are for (audience, subject,
 * bound pod), for the logs: a real provider exchanges them with its store;
 * this one only shows it got them. Never the tokens themselves.
 */
export function tokenClaims(attributes: Record<string, string>): Record<string, { sub?: string; pod?: string }> {
  const raw = attributes['csi.storage.k8s.io/serviceAccount.tokens'];
  if (!raw) return {};
  const out: Record<string, { sub?: string; pod?: string }> = {};
  try {
    for (const [aud, v] of Object.entries(JSON.parse(raw) as Record<string, { token?: string }>)) {
      const payload = JSON.parse(Buffer.from(v.token?.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
        sub?: string;
        'kubernetes.io'?: { pod?: { name?: string } };
      };
      out[aud] = {
        ...(payload.sub ? { sub: payload.sub } : {}),
        ...(payload['kubernetes.io']?.pod?.name ? { pod: payload['kubernetes.io'].pod.name } : {}),
      };
    }
  } catch {
    return { invalid: {} };
  }
  return out;
}

/** A provider writing a file into the mount itself: temp file, chmod, write, fsync, rename; the temp file goes on failure. */
async function writeLikeAws(
  dir: string,
  name: string,
  mode: number,
  contents: Uint8Array,
  hooks: { truncateTo?: number; pauseMs?: number; log?: ExampleProviderOptions['log'] } = {},
): Promise<void> {
  const tmpName = `${name}${randomBytes(4).readUInt32LE(0)}`;
  const tmp = join(dir, tmpName);
  const fh = await open(tmp, fsc.O_RDWR | fsc.O_CREAT | fsc.O_EXCL, 0o600);
  try {
    await fh.chmod(mode);
    await fh.write(contents);
    if (hooks.truncateTo !== undefined) await fh.truncate(hooks.truncateTo); // a test hook: sparse growth
    await fh.sync();
    if (hooks.pauseMs) {
      // A test hook: the temp file sits in the volume, named, for a while.
      hooks.log?.('paused before rename', { tmp: tmpName });
      await new Promise((r) => setTimeout(r, hooks.pauseMs));
    }
    await rename(tmp, join(dir, name));
  } finally {
    await fh.close();
    await unlink(tmp).catch(() => undefined);
  }
}

export async function startExampleProvider(o: ExampleProviderOptions): Promise<Server> {
  await unlink(o.socketPath).catch(() => undefined);
  const server = new Server();
  server.addService(CSIDriverProviderService, exampleProvider(o));
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix:${o.socketPath}`, ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())),
  );
  return server;
}
