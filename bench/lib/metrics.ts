// Observing the driver: its Prometheus metrics and its /proc status.

import { readFile } from 'node:fs/promises';

/** Parses Prometheus text into "name{labels}" -> value. */
export async function scrape(url: string): Promise<Map<string, number>> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** secrets_store_fuse_requests_total by op. */
export function fuseRequests(m: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of m) {
    const x = /^secrets_store_fuse_requests_total\{op="([^"]+)"\}$/.exec(k);
    if (x) out[x[1]!] = v;
  }
  return out;
}

export function diffCounts(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) {
    const d = v - (before[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

/** A /proc/<pid>/status field in KiB (VmRSS, VmLck, ...). */
export async function statusKiB(pid: number, field = 'VmRSS'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status);
  if (!m) throw new Error(`no ${field} for ${pid}`);
  return Number(m[1]);
}

export const rssKiB = (pid: number): Promise<number> => statusKiB(pid, 'VmRSS');
/** The anonymous part of RSS (heaps, stacks): what is not pages of files such as the runtime's own binary. */
export const anonKiB = (pid: number): Promise<number> => statusKiB(pid, 'RssAnon');
