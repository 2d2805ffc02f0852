// The process and Node.js metrics operators expect under their usual names
// (process_*, nodejs_*), each read when /metrics is scraped: no timers, no
// event-loop or GC monitors, so an idle driver spends no CPU on them. A value
// that cannot be read (no /proc) leaves its metric out of that scrape.

import { readFileSync, readdirSync } from 'node:fs';
import { Sampled, type Registry, type SampleResult } from './prometheus.js';

/** Whole seconds, as the start time has always been exposed. */
const START_SECONDS = Math.round(Date.now() / 1000 - process.uptime());

/** A /proc/self/status field given in kB, in bytes. */
function statusBytes(field: 'VmRSS' | 'VmSize' | 'VmData'): number | undefined {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : undefined;
}

/** The soft limit on open files. */
function maxFds(): number | undefined {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  if (!m) return undefined;
  return m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

export function registerProcessMetrics(registry: Registry): void {
  const cpu = (pick: (u: NodeJS.CpuUsage) => number) => () => pick(process.cpuUsage()) / 1e6;
  const mem = (pick: (m: NodeJS.MemoryUsage) => number) => () => pick(process.memoryUsage());
  const version = process.versions.node;
  const [major = '', minor = '', patch = ''] = version.split('.');
  const metrics: ReadonlyArray<[string, 'counter' | 'gauge', string, () => SampleResult]> = [
    ['process_cpu_user_seconds_total', 'counter', 'CPU time spent in user mode, in seconds', cpu((u) => u.user)],
    ['process_cpu_system_seconds_total', 'counter', 'CPU time spent in the kernel for the process, in seconds', cpu((u) => u.system)],
    ['process_cpu_seconds_total', 'counter', 'User and system CPU time, in seconds', cpu((u) => u.user + u.system)],
    ['process_start_time_seconds', 'gauge', 'When the process started, in seconds since the Unix epoch', () => START_SECONDS],
    ['process_resident_memory_bytes', 'gauge', 'Resident set size, in bytes', () => statusBytes('VmRSS')],
    ['process_virtual_memory_bytes', 'gauge', 'Virtual memory size, in bytes', () => statusBytes('VmSize')],
    ['process_heap_bytes', 'gauge', 'Size of the data segment (VmData), in bytes', () => statusBytes('VmData')],
    // Less one: the descriptor of the directory being listed.
    ['process_open_fds', 'gauge', 'Open file descriptors', () => readdirSync('/proc/self/fd').length - 1],
    ['process_max_fds', 'gauge', 'Limit on open file descriptors (soft)', maxFds],
    ['nodejs_heap_size_total_bytes', 'gauge', 'V8 heap size, in bytes', mem((m) => m.heapTotal)],
    ['nodejs_heap_size_used_bytes', 'gauge', 'V8 heap in use, in bytes', mem((m) => m.heapUsed)],
    ['nodejs_external_memory_bytes', 'gauge', 'Memory of C++ objects bound to JavaScript objects, in bytes', mem((m) => m.external)],
    [
      'nodejs_version_info',
      'gauge',
      'The Node.js version (always 1)',
      () => [{ labels: { version: `v${version}`, major, minor, patch }, value: 1 }],
    ],
  ];
  for (const [name, type, help, sample] of metrics) new Sampled({ name, type, help, sample, registry });
}
