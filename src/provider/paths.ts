// Validation of the files a provider returns, with upstream's rules and
// messages (pkg/util/fileutil: validatePath + filepath.Clean check), plus two
// checks upstream's atomic writer only fails on by accident: duplicate paths,
// and a path that is both a file and a directory. Any failure rejects the
// whole response; what is already served is left untouched.

import { posix } from 'node:path';

export const MAX_PATH_LENGTH = 4096;
export const MAX_FILE_NAME_LENGTH = 255;

/** Returns an error message, or null when the path is acceptable. */
export function validatePath(p: string): string | null {
  if (p === '') return `invalid path: must not be empty: ${JSON.stringify(p)}`;
  if (p.startsWith('/')) return `invalid path: must be relative path: ${p}`;
  // Go's len() counts bytes, and so does the kernel's NAME_MAX/PATH_MAX.
  if (Buffer.byteLength(p) > MAX_PATH_LENGTH) return `invalid path: must be less than or equal to ${MAX_PATH_LENGTH} characters`;
  const items = p.split('/');
  for (const item of items) {
    if (item === '..') return `invalid path: must not contain '..': ${p}`;
    if (Buffer.byteLength(item) > MAX_FILE_NAME_LENGTH) {
      return `invalid path: filenames must be less than or equal to ${MAX_FILE_NAME_LENGTH} characters`;
    }
  }
  if (items[0]!.startsWith('..') && items[0]!.length > 2) return `invalid path: must not start with '..': ${p}`;
  if (posix.normalize(p) !== p || p.endsWith('/') || p === '.') return `invalid filepath: ${JSON.stringify(p)}`;
  // A NUL cannot be part of a Linux file name.
  if (p.includes('\0')) return `invalid filepath: ${JSON.stringify(p).replace(/\\u0000/g, '\\x00')}`;
  return null;
}

export interface ProviderFile {
  readonly path: string;
  readonly mode: number;
  readonly contents: Uint8Array;
}

/** Returns an error message for the first bad file of the set, or null. */
export function validateFiles(files: readonly ProviderFile[]): string | null {
  const seen = new Set<string>();
  for (const f of files) {
    const err = validatePath(f.path);
    if (err) return err;
    if (!Number.isInteger(f.mode) || f.mode < 0 || f.mode > 0o7777) {
      return `invalid file mode ${f.mode} for ${f.path}: must be between 0 and 4095 (07777)`;
    }
    if (seen.has(f.path)) return `invalid path: duplicate path: ${f.path}`;
    seen.add(f.path);
  }
  for (const f of files) {
    const parts = f.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (seen.has(dir)) return `invalid path: ${dir} is both a file and a directory`;
    }
  }
  return null;
}
