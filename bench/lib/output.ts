// The bench's printed output: lines and tables on stdout, progress on stderr.

export const out = (s = ''): void => {
  process.stdout.write(`${s}\n`);
};
export const pad = (s: string | number, w: number): string => String(s).padStart(w);
const padEnd = (s: string, w: number): string => s.padEnd(w);
export function table(headers: string[], rows: Array<Array<string | number>>, firstWidth = 0): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i] ?? '').length), i === 0 ? firstWidth : 0));
  out(`  ${headers.map((h, i) => (i === 0 ? padEnd(h, widths[i]!) : pad(h, widths[i]!))).join('  ')}`);
  out(`  ${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  for (const r of rows) out(`  ${r.map((c, i) => (i === 0 ? padEnd(String(c), widths[i]!) : pad(c, widths[i]!))).join('  ')}`);
}
export const fmt = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
export const phase = (name: string): void => {
  process.stderr.write(`[bench] ${name}\n`);
};
