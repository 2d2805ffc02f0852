// Our Prometheus text exposition: what a scraper parses (HELP/TYPE lines,
// label escaping, cumulative histogram buckets with +Inf), series removal,
// scrape-time collection, and the /metrics endpoint of DriverMetrics.

import t from 'tap';
import { Counter, Gauge, Histogram, PROMETHEUS_CONTENT_TYPE, Registry, Sampled, formatValue } from '../src/observability/prometheus.js';
import { DriverMetrics } from '../src/observability/metrics.js';
import { freePort } from './helpers/harness.js';

t.test('a counter without labels is exposed at 0 from the start, then counts', async (t) => {
  const r = new Registry();
  const c = new Counter({ name: 'things_total', help: 'Things done', registry: r });
  t.equal(await r.metrics(), '# HELP things_total Things done\n# TYPE things_total counter\nthings_total 0\n');
  c.inc();
  c.inc({}, 2.5);
  t.equal(r.metricsSync(), '# HELP things_total Things done\n# TYPE things_total counter\nthings_total 3.5\n');
  t.throws(() => c.inc({}, -1), /cannot go down/);
  t.throws(() => c.inc({}, Number.NaN), /cannot go down/);
});

t.test('a labelled counter: one series per label set, labels in labelNames order, remove() drops one', async (t) => {
  const r = new Registry();
  const c = new Counter({ name: 'calls_total', help: 'Calls', labelNames: ['provider', 'result'], registry: r });
  t.equal(r.metricsSync(), '# HELP calls_total Calls\n# TYPE calls_total counter\n', 'no series before the first inc');
  c.inc({ result: 'ok', provider: 'a' });
  c.inc({ provider: 'a', result: 'ok' });
  c.inc({ provider: 'b', result: 'error' });
  t.equal(
    r.metricsSync(),
    '# HELP calls_total Calls\n# TYPE calls_total counter\ncalls_total{provider="a",result="ok"} 2\ncalls_total{provider="b",result="error"} 1\n',
  );
  c.remove({ provider: 'a', result: 'ok' });
  t.equal(r.metricsSync(), '# HELP calls_total Calls\n# TYPE calls_total counter\ncalls_total{provider="b",result="error"} 1\n');
  c.remove({ provider: 'nobody', result: 'ok' });
  c.inc({ provider: 'a', result: 'ok' });
  t.match(r.metricsSync(), /calls_total\{provider="a",result="ok"\} 1\n/, 'a removed series starts again from 0');
  // Wrong label sets are programming errors, refused rather than exposed half-labelled.
  t.throws(() => c.inc({ provider: 'a' } as never), /labels/);
  t.throws(() => c.inc({ provider: 'a', result: 'ok', extra: 'x' } as never), /labels/);
});

t.test('label values escape backslash, double quote and newline; HELP escapes backslash and newline', async (t) => {
  const r = new Registry();
  const c = new Counter({ name: 'odd_total', help: 'a \\ back"slash\nand a newline', labelNames: ['v'], registry: r });
  c.inc({ v: 'C:\\dir "quoted"\nnext' });
  t.equal(
    r.metricsSync(),
    '# HELP odd_total a \\\\ back"slash\\nand a newline\n# TYPE odd_total counter\nodd_total{v="C:\\\\dir \\"quoted\\"\\nnext"} 1\n',
  );
  c.inc({ v: '' });
  t.match(r.metricsSync(), /odd_total\{v=""\} 1\n/);
});

t.test('gauges: set, inc, and a collect callback that runs at each scrape only', async (t) => {
  const r = new Registry();
  const g = new Gauge({ name: 'level', help: 'Level', registry: r });
  g.set(-2);
  g.inc({}, 0.5);
  let calls = 0;
  new Gauge({
    name: 'computed',
    help: 'Computed',
    registry: r,
    collect: (self) => self.set(++calls * 10),
  });
  t.equal(calls, 0, 'not called before a scrape');
  t.equal(
    r.metricsSync(),
    '# HELP level Level\n# TYPE level gauge\nlevel -1.5\n# HELP computed Computed\n# TYPE computed gauge\ncomputed 10\n',
  );
  t.match(r.metricsSync(), /^computed 20$/m);
  t.equal(calls, 2);
  const labelled = new Gauge({ name: 'per_op', help: 'Per op', labelNames: ['op'], registry: r });
  labelled.set(3, { op: 'read' });
  t.match(r.metricsSync(), /^per_op\{op="read"\} 3$/m);
});

t.test('histograms: cumulative buckets with le first and +Inf, then _sum and _count', async (t) => {
  const r = new Registry();
  const h = new Histogram({ name: 'lat_seconds', help: 'Latency', labelNames: ['op'], buckets: [0.1, 1, 5], registry: r });
  h.observe({ op: 'x' }, 0.05);
  h.observe({ op: 'x' }, 0.1); // on a bound: counted in that bucket (le is "less or equal")
  h.observe({ op: 'x' }, 2);
  h.observe({ op: 'x' }, 60);
  t.equal(
    r.metricsSync(),
    [
      '# HELP lat_seconds Latency',
      '# TYPE lat_seconds histogram',
      'lat_seconds_bucket{le="0.1",op="x"} 2',
      'lat_seconds_bucket{le="1",op="x"} 2',
      'lat_seconds_bucket{le="5",op="x"} 3',
      'lat_seconds_bucket{le="+Inf",op="x"} 4',
      'lat_seconds_sum{op="x"} 62.15',
      'lat_seconds_count{op="x"} 4',
      '',
    ].join('\n'),
  );
  h.remove({ op: 'x' });
  t.equal(r.metricsSync(), '# HELP lat_seconds Latency\n# TYPE lat_seconds histogram\n');
  const plain = new Histogram({ name: 'plain', help: 'Plain', buckets: [1], registry: r });
  plain.observe({}, 0.5);
  t.match(r.metricsSync(), /plain_bucket\{le="1"\} 1\nplain_bucket\{le="\+Inf"\} 1\nplain_sum 0.5\nplain_count 1\n/);
  t.throws(() => new Histogram({ name: 'bad', help: 'b', buckets: [2, 1] }), /ascending/);
  t.throws(() => new Histogram({ name: 'bad', help: 'b', labelNames: ['le'], buckets: [1] }), /le/);
});

t.test('registry: one metric per name; sampled metrics are computed per scrape, left out when unreadable', async (t) => {
  const r = new Registry();
  new Counter({ name: 'dup_total', help: 'x', registry: r });
  t.throws(() => new Counter({ name: 'dup_total', help: 'y', registry: r }), /already registered/);
  t.throws(() => new Counter({ name: 'bad-name', help: 'x' }), /invalid metric name/);
  let n = 0;
  new Sampled({ name: 'sampled_total', help: 'S', type: 'counter', sample: () => ++n, registry: r });
  new Sampled({ name: 'info', help: 'I', type: 'gauge', sample: () => [{ labels: { version: 'v"1' }, value: 1 }], registry: r });
  new Sampled({ name: 'missing', help: 'M', type: 'gauge', sample: () => undefined, registry: r });
  new Sampled({
    name: 'failing',
    help: 'F',
    type: 'gauge',
    sample: () => {
      throw new Error('no /proc');
    },
    registry: r,
  });
  const body = r.metricsSync();
  t.match(body, /# TYPE sampled_total counter\nsampled_total 1\n/);
  t.match(body, /^info\{version="v\\"1"\} 1$/m);
  t.notMatch(body, /missing|failing/);
  t.match(r.metricsSync(), /^sampled_total 2$/m);
  t.equal(formatValue(Infinity), '+Inf');
  t.equal(formatValue(-Infinity), '-Inf');
  t.equal(formatValue(Number.NaN), 'NaN');
  t.equal(r.contentType, 'text/plain; version=0.0.4; charset=utf-8');
});

t.test('DriverMetrics over HTTP: content type, the driver series, and process metrics read at scrape', async (t) => {
  const m = new DriverMetrics();
  m.publishOk('example');
  m.rotationOk('example', true, 0.25);
  m.observeFilesystem(() => ({ inodes: 12, fileBytes: 345 }));
  const port = await freePort();
  const server = await m.listen(`127.0.0.1:${port}`);
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  t.equal(res.headers.get('content-type'), PROMETHEUS_CONTENT_TYPE);
  const body = await res.text();
  t.match(body, /^node_publish_total\{provider="example",os_type="linux"\} 1$/m);
  t.match(body, /^rotation_reconcile_duration_sec_bucket\{le="0.3",os_type="linux"\} 1$/m);
  t.match(body, /^secrets_store_fuse_inodes 12$/m);
  t.match(body, /^secrets_store_fuse_file_bytes 345$/m);
  for (const name of [
    'process_cpu_user_seconds_total',
    'process_cpu_system_seconds_total',
    'process_cpu_seconds_total',
    'process_start_time_seconds',
    'process_resident_memory_bytes',
    'process_virtual_memory_bytes',
    'process_heap_bytes',
    'process_open_fds',
    'process_max_fds',
    'nodejs_heap_size_total_bytes',
    'nodejs_heap_size_used_bytes',
    'nodejs_external_memory_bytes',
  ]) {
    const v = new RegExp(`^${name} (\\S+)$`, 'm').exec(body);
    t.ok(v && Number(v[1]) >= 0, `${name} is a number`);
  }
  t.match(body, new RegExp(`^nodejs_version_info\\{version="${process.version}",major="\\d+",minor="\\d+",patch="\\d+"\\} 1$`, 'm'));
  const rss = Number(/^process_resident_memory_bytes (\d+)$/m.exec(body)![1]);
  t.ok(rss > 10 * 1024 * 1024, 'RSS from /proc, in bytes');
  t.equal((await fetch(`http://127.0.0.1:${port}/other`)).status, 404);
  t.notMatch(new DriverMetrics(false).registry.metricsSync(), /process_/, 'no process metrics when not asked');
});
