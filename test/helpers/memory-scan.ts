// Scans a live process's memory for byte strings, as root: the mappings and
// their flags from /proc/PID/smaps, the bytes from /proc/PID/mem. Used to
// prove where secret bytes live (docs/memory.md).

import { open, readFile } from 'node:fs/promises';

export interface Mapping {
  readonly start: number;
  readonly end: number;
  readonly perms: string;
  readonly name: string;
  readonly rssKb: number;
  /** VmFlags contains `lo` (VM_LOCKED: mlock'ed). */
  readonly locked: boolean;
  /** VmFlags contains `dd` (VM_DONTDUMP: never in a core dump). */
  readonly dontDump: boolean;
}

export interface Hit {
  /** The bytes found after the prefix, up to `tailLength`. */
  readonly tail: string;
  readonly address: number;
  readonly mapping: Mapping;
}

export function parseSmaps(text: string): Mapping[] {
  const out: Mapping[] = [];
  let cur: { start: number; end: number; perms: string; name: string; rssKb: number; flags: string } | null = null;
  const flush = (): void => {
    if (!cur) return;
    const flags = cur.flags.split(' ');
    out.push({
      start: cur.start,
      end: cur.end,
      perms: cur.perms,
      name: cur.name,
      rssKb: cur.rssKb,
      locked: flags.includes('lo'),
      dontDump: flags.includes('dd'),
    });
  };
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      flush();
      cur = { start: parseInt(head[1]!, 16), end: parseInt(head[2]!, 16), perms: head[3]!, name: head[4]!.trim(), rssKb: 0, flags: '' };
      continue;
    }
    if (!cur) continue;
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) cur.rssKb = Number(rss[1]);
    const vm = /^VmFlags:\s*(.*)$/.exec(line);
    if (vm) cur.flags = vm[1]!.trim();
  }
  flush();
  return out;
}

const CHUNK = 4 * 1024 * 1024;

/**
 * Every occurrence of `prefix` in the readable, resident memory of `pid`,
 * with the `tailLength` bytes that follow it. Ranges the kernel refuses to
 * read ([vvar], guard pages, IO mappings) are skipped and counted.
 */
export async function scanProcess(
  pid: number,
  prefix: string,
  tailLength: number,
): Promise<{ hits: Hit[]; mappings: Mapping[]; skipped: number; bytes: number }> {
  const mappings = parseSmaps(await readFile(`/proc/${pid}/smaps`, 'utf8'));
  const needle = Buffer.from(prefix, 'latin1');
  const overlap = needle.length + tailLength;
  const fh = await open(`/proc/${pid}/mem`, 'r');
  const hits: Hit[] = [];
  let skipped = 0;
  let bytes = 0;
  const buf = Buffer.alloc(CHUNK + overlap);
  try {
    for (const m of mappings) {
      if (!m.perms.startsWith('r') || m.rssKb === 0 || m.name === '[vvar]' || m.name === '[vsyscall]') continue;
      // Chunks overlap by a match's length so none is cut in two.
      for (let at = m.start; at < m.end; at += CHUNK) {
        const len = Math.min(CHUNK + overlap, m.end - at);
        let n: number;
        try {
          ({ bytesRead: n } = await fh.read(buf, 0, len, at));
        } catch {
          skipped++;
          continue;
        }
        bytes += Math.min(n, CHUNK);
        const view = buf.subarray(0, n);
        for (let i = view.indexOf(needle); i >= 0; i = view.indexOf(needle, i + 1)) {
          if (i >= CHUNK) break; // the next chunk finds it
          const tail = view.subarray(i + needle.length, Math.min(n, i + needle.length + tailLength)).toString('latin1');
          hits.push({ tail, address: at + i, mapping: m });
        }
      }
    }
  } finally {
    await fh.close();
  }
  return { hits, mappings, skipped, bytes };
}
