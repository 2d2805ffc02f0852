// Which process a FUSE request came from.

import { readFileSync } from 'node:fs';

/**
 * The process a thread belongs to: the kernel stamps FUSE requests with the
 * calling thread's id, and a Go provider writes from many threads. procfs is
 * not our mount, so reading it on the serving thread is safe.
 */
export function threadGroupOf(tid: number): number {
  if (tid <= 0) return 0;
  try {
    const m = /^Tgid:\s*(\d+)$/m.exec(readFileSync(`/proc/${tid}/status`, 'latin1'));
    return m ? Number(m[1]) : -1;
  } catch {
    return -1;
  }
}
