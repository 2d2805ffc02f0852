// The side-by-side table: one line per figure, upstream's and ours, the
// ratio ours/upstream and which driver is ahead (within 5 % counts as even).
// Printed as text, and as Markdown for docs/performance.md.

import { fmt, out, table } from '../lib/output.js';

export interface Line {
  readonly label: string;
  readonly unit: string;
  readonly upstream: number;
  readonly ours: number;
  /** Which way is better (default: lower). */
  readonly better?: 'lower' | 'higher';
  readonly digits?: number;
}

const EVEN = 0.05;

export const ratio = (l: Line): number => (l.upstream === 0 ? Number.NaN : l.ours / l.upstream);

export function ahead(l: Line): 'ours' | 'upstream' | 'even' | 'n/a' {
  if (!Number.isFinite(l.upstream) || !Number.isFinite(l.ours)) return 'n/a';
  if (l.upstream === l.ours) return 'even';
  const lowerWins = (l.better ?? 'lower') === 'lower';
  const big = Math.max(Math.abs(l.upstream), Math.abs(l.ours));
  if (Math.abs(l.upstream - l.ours) / big <= EVEN) return 'even';
  return l.ours < l.upstream === lowerWins ? 'ours' : 'upstream';
}

const cells = (l: Line): string[] => {
  const r = ratio(l);
  return [
    `${l.label} (${l.unit})`,
    fmt(l.upstream, l.digits ?? 1),
    fmt(l.ours, l.digits ?? 1),
    Number.isFinite(r) ? `${fmt(r, 2)}x` : 'n/a',
    ahead(l),
  ];
};

const HEADERS = ['', 'upstream', 'ours', 'ratio', 'ahead'];

export function printLines(lines: readonly Line[]): void {
  table(HEADERS, lines.map(cells), 40);
}

export function printMarkdown(lines: readonly Line[]): void {
  out(`| figure | upstream v1.6.0 | ours | ratio ours/upstream | ahead |`);
  out(`|---|---:|---:|---:|---|`);
  for (const l of lines) out(`| ${cells(l).join(' | ')} |`);
}
