// The mount table as the kernel shows it to this process (/proc/self/mountinfo).

import { readFile } from 'node:fs/promises';

export interface MountInfoEntry {
  readonly mountId: number;
  readonly root: string;
  readonly mountPoint: string;
  readonly fsType: string;
  readonly source: string;
  readonly options: string;
}

/** Undoes the octal escapes mountinfo uses for space, tab, newline and backslash. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMountInfo(text: string): MountInfoEntry[] {
  const out: MountInfoEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const a = line.slice(0, sep).split(' ');
    const b = line.slice(sep + 3).split(' ');
    out.push({
      mountId: Number(a[0]),
      root: unescape(a[3] ?? ''),
      mountPoint: unescape(a[4] ?? ''),
      fsType: b[0] ?? '',
      source: unescape(b[1] ?? ''),
      options: b[2] ?? '',
    });
  }
  return out;
}

export async function readMountInfo(): Promise<MountInfoEntry[]> {
  return parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

export function isMountPoint(table: readonly MountInfoEntry[], path: string): boolean {
  return table.some((m) => m.mountPoint === path);
}
