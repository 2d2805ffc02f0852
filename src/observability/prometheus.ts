// A small Prometheus text-exposition (format 0.0.4) registry: counters,
// gauges and histograms with fixed label names. Ours rather than prom-client,
// which loaded ~90 modules (with @opentelemetry/api) at every start and ran
// an event-loop-delay monitor and GC observers while the driver idled.
// Nothing here runs between scrapes: values are numbers in maps, and what is
// computed (gauges' collect callbacks, sampled metrics) is computed when
// /metrics is read.

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** One value per label name, in any order; exposed in the metric's labelNames order. */
export type LabelValues<N extends string> = { readonly [K in N]: string };

export interface MetricOptions<N extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly N[];
  /** Registered here (once) when given. */
  readonly registry?: Registry;
}

type MetricType = 'counter' | 'gauge' | 'histogram';

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A label value inside double quotes: backslash, quote and newline escaped. */
export function escapeLabelValue(v: string): string {
  return v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

/** HELP text: backslash and newline escaped (quotes stay as they are). */
export function escapeHelp(v: string): string {
  return v.replace(/[\\\n]/g, (c) => (c === '\n' ? '\\n' : '\\\\'));
}

/** A sample value: Go's spelling of the non-finite ones, else JavaScript's shortest round-trip form. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** `{a="x",b="y"}` from already-ordered pairs; empty without pairs. */
function labelBlock(pairs: ReadonlyArray<readonly [string, string]>): string {
  if (pairs.length === 0) return '';
  return `{${pairs.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}`;
}

interface Series<V> {
  readonly values: readonly string[];
  data: V;
}

/** Shared by every metric: its name, help, label names and the series seen so far, by label values. */
abstract class Metric<N extends string, V> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly N[];
  private readonly series = new Map<string, Series<V>>();

  constructor(
    readonly type: MetricType,
    o: MetricOptions<N>,
  ) {
    if (!NAME.test(o.name)) throw new TypeError(`invalid metric name ${JSON.stringify(o.name)}`);
    const labelNames = o.labelNames ?? [];
    for (const l of labelNames) {
      if (!LABEL.test(l) || l.startsWith('__')) throw new TypeError(`${o.name}: invalid label name ${JSON.stringify(l)}`);
      if (type === 'histogram' && l === 'le') throw new TypeError(`${o.name}: le is the histogram's own label`);
    }
    if (new Set(labelNames).size !== labelNames.length) throw new TypeError(`${o.name}: duplicate label names`);
    this.name = o.name;
    this.help = o.help;
    this.labelNames = labelNames;
    o.registry?.register(this);
  }

  /** The label values in labelNames order; every name must be given, and no other. */
  private valuesOf(labels: LabelValues<N>): string[] {
    const given = Object.keys(labels);
    if (given.length !== this.labelNames.length || !this.labelNames.every((n) => typeof labels[n] === 'string')) {
      throw new TypeError(`${this.name}: labels ${JSON.stringify(given)} differ from ${JSON.stringify(this.labelNames)}`);
    }
    return this.labelNames.map((n) => labels[n]);
  }

  protected seriesFor(labels: LabelValues<N>, init: () => V): Series<V> {
    const values = this.valuesOf(labels);
    const key = JSON.stringify(values);
    let s = this.series.get(key);
    if (!s) {
      s = { values, data: init() };
      this.series.set(key, s);
    }
    return s;
  }

  /** Forgets one series: it is no longer exposed until recorded again. */
  remove(labels: LabelValues<N>): void {
    this.series.delete(JSON.stringify(this.valuesOf(labels)));
  }

  /** Forgets every series. */
  reset(): void {
    this.series.clear();
  }

  protected pairs(s: Series<V>): Array<readonly [string, string]> {
    return this.labelNames.map((n, i) => [n, s.values[i]!] as const);
  }

  protected allSeries(): Iterable<Series<V>> {
    return this.series.values();
  }

  /** Runs before exposition (gauges' collect callbacks). */
  protected collect(): void {}

  /** The sample lines, each ending in a newline. */
  protected abstract samples(): string;

  /** HELP, TYPE and sample lines. */
  expose(): string {
    this.collect();
    return `# HELP ${this.name} ${escapeHelp(this.help)}\n# TYPE ${this.name} ${this.type}\n${this.samples()}`;
  }
}

const NO_LABELS = {} as never;

/** Only goes up. Without label names its one series is exposed from the start, at 0. */
export class Counter<N extends string = never> extends Metric<N, number> {
  constructor(o: MetricOptions<N>) {
    super('counter', o);
    if (this.labelNames.length === 0) this.seriesFor(NO_LABELS, () => 0);
  }

  inc(labels: LabelValues<N> = NO_LABELS, by = 1): void {
    if (!(by >= 0)) throw new TypeError(`${this.name}: a counter cannot go down (inc by ${by})`);
    this.seriesFor(labels, () => 0).data += by;
  }

  protected samples(): string {
    let out = '';
    for (const s of this.allSeries()) out += `${this.name}${labelBlock(this.pairs(s))} ${formatValue(s.data)}\n`;
    return out;
  }
}

export interface GaugeOptions<N extends string> extends MetricOptions<N> {
  /** Called at every scrape, before the values are read: set them here when they are cheaper to compute than to track. */
  readonly collect?: (gauge: Gauge<N>) => void;
}

/** Goes up and down. Without label names its one series is exposed from the start, at 0. */
export class Gauge<N extends string = never> extends Metric<N, number> {
  private readonly onCollect: ((gauge: Gauge<N>) => void) | undefined;

  constructor(o: GaugeOptions<N>) {
    super('gauge', o);
    this.onCollect = o.collect;
    if (this.labelNames.length === 0) this.seriesFor(NO_LABELS, () => 0);
  }

  set(value: number, labels: LabelValues<N> = NO_LABELS): void {
    this.seriesFor(labels, () => 0).data = value;
  }

  inc(labels: LabelValues<N> = NO_LABELS, by = 1): void {
    this.seriesFor(labels, () => 0).data += by;
  }

  protected override collect(): void {
    this.onCollect?.(this);
  }

  protected samples(): string {
    let out = '';
    for (const s of this.allSeries()) out += `${this.name}${labelBlock(this.pairs(s))} ${formatValue(s.data)}\n`;
    return out;
  }
}

export interface HistogramOptions<N extends string> extends MetricOptions<N> {
  /** Upper bounds, ascending; +Inf is added. */
  readonly buckets: readonly number[];
}

interface HistogramData {
  /** Per bucket (not cumulative), then the overflow past the last bound. */
  readonly counts: number[];
  sum: number;
}

/** Observations counted into fixed buckets; exposed cumulatively (le first, as prom-client wrote it), with _sum and _count. */
export class Histogram<N extends string = never> extends Metric<N, HistogramData> {
  readonly buckets: readonly number[];
  private readonly bounds: readonly string[];

  constructor(o: HistogramOptions<N>) {
    super('histogram', o);
    const b = o.buckets.filter((x) => x !== Infinity);
    if (b.length === 0 || b.some((x, i) => !Number.isFinite(x) || (i > 0 && x <= b[i - 1]!))) {
      throw new TypeError(`${o.name}: buckets must be finite and ascending`);
    }
    this.buckets = b;
    this.bounds = [...b.map(formatValue), '+Inf'];
  }

  observe(labels: LabelValues<N>, value: number): void {
    const d = this.seriesFor(labels, () => ({ counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0 })).data;
    let i = 0;
    while (i < this.buckets.length && value > this.buckets[i]!) i++;
    d.counts[i]!++;
    d.sum += value;
  }

  protected samples(): string {
    let out = '';
    for (const s of this.allSeries()) {
      const pairs = this.pairs(s);
      let acc = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        acc += s.data.counts[i]!;
        out += `${this.name}_bucket${labelBlock([['le', this.bounds[i]!], ...pairs])} ${acc}\n`;
      }
      const block = labelBlock(pairs);
      out += `${this.name}_sum${block} ${formatValue(s.data.sum)}\n${this.name}_count${block} ${acc}\n`;
    }
    return out;
  }
}

/** The series now: a bare number for one unlabelled series; nothing leaves the metric out of this scrape. */
export type SampleResult = number | ReadonlyArray<{ labels: Readonly<Record<string, string>>; value: number }> | undefined;

/** A metric whose series are all computed at scrape time; none are stored. */
export interface SampledOptions {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge';
  /** A throw leaves the metric out of this scrape, as undefined does. */
  readonly sample: () => SampleResult;
  readonly registry?: Registry;
}

export class Sampled {
  readonly name: string;
  constructor(private readonly o: SampledOptions) {
    if (!NAME.test(o.name)) throw new TypeError(`invalid metric name ${JSON.stringify(o.name)}`);
    this.name = o.name;
    o.registry?.register(this);
  }

  expose(): string {
    let got: SampleResult;
    try {
      got = this.o.sample();
    } catch {
      got = undefined;
    }
    if (got === undefined) return '';
    const series = typeof got === 'number' ? [{ labels: {}, value: got }] : got;
    let out = `# HELP ${this.name} ${escapeHelp(this.o.help)}\n# TYPE ${this.name} ${this.o.type}\n`;
    for (const s of series) out += `${this.name}${labelBlock(Object.entries(s.labels))} ${formatValue(s.value)}\n`;
    return out;
  }
}

interface Exposable {
  readonly name: string;
  expose(): string;
}

/** Metrics by name, exposed in the order they were registered. */
export class Registry {
  readonly contentType = PROMETHEUS_CONTENT_TYPE;
  private readonly byName = new Map<string, Exposable>();

  register(m: Exposable): void {
    const had = this.byName.get(m.name);
    if (had && had !== m) throw new TypeError(`a metric named ${m.name} is already registered`);
    this.byName.set(m.name, m);
  }

  /** The exposition text. Async as prom-client's was, so callers need not change if a collector ever has to wait. */
  async metrics(): Promise<string> {
    return this.metricsSync();
  }

  metricsSync(): string {
    let out = '';
    for (const m of this.byName.values()) out += m.expose();
    return out;
  }
}
