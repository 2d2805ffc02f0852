// The example provider's secret source: a YAML or JSON file read afresh on
// every Mount, so editing the file is a rotation. Besides files it can carry
// test hooks (an error code, a gRPC error, a delay, bad object versions), which
// is how the driver's tests make a real provider misbehave.
//
//   files:
//     - path: db/password         # file path in the volume
//       contents: "s3cret"        # UTF-8 text, or contentsBase64
//       mode: 0o440               # optional, default: the request's permission
//       truncateTo: 1073741824    # writeFiles only: ftruncate the file to this size after writing
//   errorCode: ""                 # MountResponse.error.code
//   grpcError: { code: 14, message: "store down" }
//   delayMs: 0                    # answer late (deadline tests)
//   pauseBeforeRenameMs: 0        # writeFiles only: wait this long with each temp file written, before its rename
//   objectVersions: [...]         # override the versions sent back

import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { parse } from 'yaml';

export interface SourceFile {
  readonly path: string;
  readonly mode?: number;
  readonly contents: Buffer;
  readonly truncateTo?: number;
}

export interface Source {
  readonly files: SourceFile[];
  readonly errorCode?: string;
  readonly grpcError?: { code: number; message: string };
  readonly delayMs?: number;
  readonly pauseBeforeRenameMs?: number;
  readonly objectVersions?: Array<{ id: string; version: string }>;
}

interface RawFile {
  path?: unknown;
  contents?: unknown;
  contentsBase64?: unknown;
  mode?: unknown;
  truncateTo?: unknown;
}

export async function readSource(file: string): Promise<Source> {
  const raw = (parse(await readFile(file, 'utf8'), { intAsBigInt: false }) as Record<string, unknown> | null) ?? {};
  const files = ((raw.files ?? []) as RawFile[]).map((f) => {
    const contents =
      typeof f.contentsBase64 === 'string' ? Buffer.from(f.contentsBase64, 'base64') : Buffer.from(String(f.contents ?? ''), 'utf8');
    return {
      path: String(f.path ?? ''),
      contents,
      ...(typeof f.mode === 'number' ? { mode: f.mode } : {}),
      ...(typeof f.truncateTo === 'number' ? { truncateTo: f.truncateTo } : {}),
    };
  });
  return {
    files,
    ...(typeof raw.errorCode === 'string' ? { errorCode: raw.errorCode } : {}),
    ...(raw.grpcError ? { grpcError: raw.grpcError as { code: number; message: string } } : {}),
    ...(typeof raw.delayMs === 'number' ? { delayMs: raw.delayMs } : {}),
    ...(typeof raw.pauseBeforeRenameMs === 'number' ? { pauseBeforeRenameMs: raw.pauseBeforeRenameMs } : {}),
    ...(Array.isArray(raw.objectVersions) ? { objectVersions: raw.objectVersions as Array<{ id: string; version: string }> } : {}),
  };
}

/** A file's version: a short digest of path, mode and content (changes exactly when the file does). */
export function versionOf(f: SourceFile): string {
  return createHash('sha256')
    .update(f.path)
    .update(String(f.mode ?? ''))
    .update(f.contents)
    .digest('hex')
    .slice(0, 16);
}
