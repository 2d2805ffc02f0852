// Unit tests of the command-line parsing (src/cli/flags.ts): Go flag syntax,
// every upstream flag name, defaults, and Go durations.

import t from 'tap';
import { errMsg } from './helpers/errors.js';
import { parseGoInt, parseFlags, parseDuration, defaultFlags, usage, type DriverFlags } from '../src/cli/flags.js';

t.test('defaults', async (t) => {
  const d = parseFlags([]);
  t.strictSame(d, defaultFlags(), 'no arguments: the defaults');
  t.equal(d.rotationPollIntervalMs, 120_000, 'rotation-poll-interval 2m');
  t.equal(d.maxCallRecvMsgSize, 4194304);
  t.equal(d.providerVolume, '/var/run/secrets-store-csi-providers');
  t.strictSame(d.additionalProviderVolumePaths, ['/etc/kubernetes/secrets-store-csi-providers']);
  t.equal(d.driverName, 'secrets-store.csi.k8s.io');
  t.equal(d.endpoint, 'unix://tmp/csi.sock');
  t.equal(d.nodeId, '');
  t.equal(d.metricsAddr, ':8095');
  t.equal(d.kubeconfig, '');
  t.equal(d.version, false);
  t.equal(d.help, false);
  t.equal(d.enableSecretRotation, true);
  t.equal(d.rotationConcurrency, 4);
  t.equal(d.providerTimeoutMs, 60_000);
  t.equal(d.logLevel, 'info');
  t.equal(d.lockMemory, true);
  // defaultFlags returns a fresh object each time.
  const a = defaultFlags();
  a.additionalProviderVolumePaths.push('/x');
  t.strictSame(defaultFlags().additionalProviderVolumePaths, ['/etc/kubernetes/secrets-store-csi-providers']);
});

t.test('Go flag syntax for values', async (t) => {
  for (const argv of [
    ['-endpoint', 'unix:///csi/csi.sock'],
    ['--endpoint', 'unix:///csi/csi.sock'],
    ['-endpoint=unix:///csi/csi.sock'],
    ['--endpoint=unix:///csi/csi.sock'],
  ]) {
    t.equal(parseFlags(argv).endpoint, 'unix:///csi/csi.sock', argv.join(' '));
  }
  t.equal(parseFlags(['--nodeid=']).nodeId, '', 'explicit empty value');
  t.equal(parseFlags(['--kubeconfig=a=b']).kubeconfig, 'a=b', 'only the first = splits');
  t.equal(parseFlags(['--nodeid', '-dash-value']).nodeId, '-dash-value', 'the next argument is the value, even with a dash');
  t.equal(parseFlags(['--nodeid', 'a', '--nodeid', 'b']).nodeId, 'b', 'last one wins');
  t.equal(parseFlags(['--kubeconfig=line1\nline2']).kubeconfig, 'line1\nline2');
});

t.test('Go flag syntax for booleans', async (t) => {
  t.equal(parseFlags(['-version']).version, true);
  t.equal(parseFlags(['--version']).version, true);
  t.equal(parseFlags(['--version=true']).version, true);
  t.equal(parseFlags(['--enable-secret-rotation=false']).enableSecretRotation, false);
  t.equal(parseFlags(['-enable-secret-rotation=false']).enableSecretRotation, false);
  t.equal(parseFlags(['--enable-secret-rotation']).enableSecretRotation, true);
  for (const v of ['1', 't', 'T', 'true', 'TRUE', 'True']) t.equal(parseFlags([`--lock-memory=${v}`]).lockMemory, true, v);
  for (const v of ['0', 'f', 'F', 'false', 'FALSE', 'False']) t.equal(parseFlags([`--lock-memory=${v}`]).lockMemory, false, v);
  t.equal(
    errMsg(() => parseFlags(['--lock-memory=yes'])),
    'invalid boolean value "yes" for -lock-memory',
  );
  t.equal(
    errMsg(() => parseFlags(['--version='])),
    'invalid boolean value "" for -version',
  );
  // A bool never takes the next argument: "false" is then a stray argument.
  t.equal(
    errMsg(() => parseFlags(['--enable-secret-rotation', 'false'])),
    'unexpected argument "false"',
  );
  const f = parseFlags(['--version', '--nodeid', 'n1']);
  t.equal(f.version, true);
  t.equal(f.nodeId, 'n1', 'the argument after a bool is parsed as a flag');
  t.equal(parseFlags(['-h']).help, true);
  t.equal(parseFlags(['--help']).help, true);
});

t.test('every upstream flag is accepted', async (t) => {
  const f = parseFlags([
    '--endpoint=unix:///csi/csi.sock',
    '--nodeid=node-1',
    '--drivername=my.driver',
    '--provider-volume=/pv',
    '--additional-provider-volume-paths=/a,/b',
    '--enable-secret-rotation=true',
    '--rotation-poll-interval=30s',
    '--metrics-addr=:9999',
    '--max-call-recv-msg-size=1024',
    '--kubeconfig=/k',
    '--version=false',
    // accepted and ignored
    '--log-format-json',
    '--metrics-backend=prometheus',
    '--enable-pprof=true',
    '--pprof-port=6065',
    '--provider-health-check',
    '--provider-health-check-interval=2m',
    '-v=5',
    '--logtostderr',
  ]);
  t.equal(f.endpoint, 'unix:///csi/csi.sock');
  t.equal(f.nodeId, 'node-1');
  t.equal(f.driverName, 'my.driver');
  t.equal(f.providerVolume, '/pv');
  t.strictSame(f.additionalProviderVolumePaths, ['/a', '/b']);
  t.equal(f.enableSecretRotation, true);
  t.equal(f.rotationPollIntervalMs, 30_000);
  t.equal(f.metricsAddr, ':9999');
  t.equal(f.maxCallRecvMsgSize, 1024);
  t.equal(f.kubeconfig, '/k');
  t.equal(f.version, false);
  // The ignored flags leave everything else at its default.
  const ignoredOnly = parseFlags([
    '--log-format-json=false',
    '--metrics-backend',
    'opentelemetry',
    '--enable-pprof',
    '--pprof-port',
    '1',
    '--provider-health-check=false',
    '--provider-health-check-interval',
    '10s',
    '-v',
    '2',
  ]);
  t.strictSame(ignoredOnly, defaultFlags());
});

t.test("klog's flags, which upstream registers, are accepted and ignored", async (t) => {
  const klog = parseFlags([
    '-alsologtostderr',
    '-logtostderr=false',
    '-vmodule=nodeserver=4',
    '-stderrthreshold',
    'ERROR',
    '-log_dir=/var/log/x',
    '-log_file',
    '/x.log',
    '-log_file_max_size=1800',
    '-log_backtrace_at=file.go:10',
    '-add_dir_header',
    '-skip_headers',
    '-skip_log_headers=true',
    '-one_output',
    '-v=3',
  ]);
  t.strictSame(klog, defaultFlags(), 'nothing changes');
  t.throws(() => parseFlags(['-log_file_max_size=big']), /invalid/, 'an int flag still needs an int, as in Go');
});

t.test('flags of this driver', async (t) => {
  const f = parseFlags([
    '--rotation-concurrency=8',
    '--provider-timeout=90s',
    '--secret-provider-class-dir=/spc',
    '--fuse-mount-dir=/fuse',
    '--log-level=debug',
    '--lock-memory=false',
  ]);
  t.equal(f.rotationConcurrency, 8);
  t.equal(f.providerTimeoutMs, 90_000);
  t.equal(f.secretProviderClassDir, '/spc');
  t.equal(f.fuseMountDir, '/fuse');
  t.equal(f.logLevel, 'debug');
  t.equal(f.lockMemory, false);
});

t.test('kubelet root dir: kubelet default, any directory, empty turns the check off', async (t) => {
  t.equal(parseFlags([]).kubeletRootDir, '/var/lib/kubelet');
  t.equal(parseFlags(['--kubelet-root-dir=/data/kubelet']).kubeletRootDir, '/data/kubelet');
  t.equal(parseFlags(['--kubelet-root-dir=']).kubeletRootDir, '');
});

t.test('list flag', async (t) => {
  t.strictSame(parseFlags(['--additional-provider-volume-paths=']).additionalProviderVolumePaths, [], 'empty: none');
  t.strictSame(
    parseFlags(['--additional-provider-volume-paths', '/x,,/y,']).additionalProviderVolumePaths,
    ['/x', '/y'],
    'empty elements dropped',
  );
  t.strictSame(parseFlags(['--additional-provider-volume-paths=/only']).additionalProviderVolumePaths, ['/only']);
});

t.test('int flags take Go integer syntax (strconv.ParseInt base 0)', async (t) => {
  t.equal(parseGoInt('0x10'), 16);
  t.equal(parseGoInt('0o17'), 15);
  t.equal(parseGoInt('010'), 8, 'a leading 0 is octal');
  t.equal(parseGoInt('0b101'), 5);
  t.equal(parseGoInt('1_000'), 1000);
  t.equal(parseGoInt('-42'), -42);
  t.equal(parseGoInt('0'), 0);
  t.throws(() => parseGoInt('08'));
  t.throws(() => parseGoInt('1__0'));
  t.throws(() => parseGoInt('1_'));
  t.throws(() => parseGoInt('0x'));
  t.equal(parseFlags(['--max-call-recv-msg-size=0x800000']).maxCallRecvMsgSize, 8388608);
});

t.test('int flags', async (t) => {
  t.equal(parseFlags(['--max-call-recv-msg-size', '8388608']).maxCallRecvMsgSize, 8388608);
  t.equal(
    errMsg(() => parseFlags(['--max-call-recv-msg-size=4MB'])),
    'invalid value "4MB" for flag -max-call-recv-msg-size: parse error',
  );
  t.equal(
    errMsg(() => parseFlags(['--max-call-recv-msg-size=1.5'])),
    'invalid value "1.5" for flag -max-call-recv-msg-size: parse error',
  );
  t.equal(
    errMsg(() => parseFlags(['--max-call-recv-msg-size='])),
    'invalid value "" for flag -max-call-recv-msg-size: parse error',
  );
  t.equal(
    errMsg(() => parseFlags(['--max-call-recv-msg-size=0'])),
    '--max-call-recv-msg-size must be positive',
  );
  t.equal(
    errMsg(() => parseFlags(['--max-call-recv-msg-size=-1'])),
    '--max-call-recv-msg-size must be positive',
  );
  t.equal(
    errMsg(() => parseFlags(['--rotation-concurrency=0'])),
    '--rotation-concurrency must be positive',
  );
  t.equal(
    errMsg(() => parseFlags(['-v=x'])),
    'invalid value "x" for flag -v: parse error',
    'ignored flags are still checked',
  );
});

t.test('duration flags', async (t) => {
  t.equal(parseFlags(['--rotation-poll-interval', '1h30m']).rotationPollIntervalMs, 5_400_000);
  t.equal(
    errMsg(() => parseFlags(['--rotation-poll-interval=0'])),
    '--rotation-poll-interval must be positive',
  );
  t.equal(
    errMsg(() => parseFlags(['--rotation-poll-interval=0s'])),
    '--rotation-poll-interval must be positive',
  );
  t.equal(
    errMsg(() => parseFlags(['--rotation-poll-interval=2x'])),
    'invalid duration "2x"',
  );
  t.equal(
    errMsg(() => parseFlags(['--provider-health-check-interval=soon'])),
    'invalid duration "soon"',
  );
});

t.test('errors', async (t) => {
  t.equal(
    errMsg(() => parseFlags(['-nope'])),
    'flag provided but not defined: -nope',
  );
  t.equal(
    errMsg(() => parseFlags(['--nope=1'])),
    'flag provided but not defined: -nope',
  );
  t.equal(
    errMsg(() => parseFlags(['--Endpoint=x'])),
    'flag provided but not defined: -Endpoint',
    'names are case-sensitive',
  );
  t.equal(
    errMsg(() => parseFlags(['---endpoint=x'])),
    'flag provided but not defined: --endpoint',
  );
  t.equal(
    errMsg(() => parseFlags(['--endpoint'])),
    'flag needs an argument: -endpoint',
    'missing argument',
  );
  t.equal(
    errMsg(() => parseFlags(['-rotation-poll-interval'])),
    'flag needs an argument: -rotation-poll-interval',
  );
  t.equal(
    errMsg(() => parseFlags(['--nodeid', 'n', '--kubeconfig'])),
    'flag needs an argument: -kubeconfig',
  );
  t.equal(
    errMsg(() => parseFlags(['positional'])),
    'unexpected argument "positional"',
  );
  t.equal(
    errMsg(() => parseFlags(['-'])),
    'unexpected argument "-"',
  );
  t.not(
    errMsg(() => parseFlags(['--=x'])),
    '<no error>',
    'bad flag syntax is rejected',
  );
  t.not(
    errMsg(() => parseFlags(['-=x'])),
    '<no error>',
  );
});

t.test('-- ends the flags', async (t) => {
  const f = parseFlags(['--nodeid=a', '--', '--nodeid=b', 'anything', '-nope']);
  t.equal(f.nodeId, 'a');
});

t.test('parseDuration', async (t) => {
  const cases: Array<[string, number]> = [
    ['2m', 120_000],
    ['120s', 120_000],
    ['1h30m', 5_400_000],
    ['500ms', 500],
    ['1.5s', 1500],
    ['0', 0],
    ['0s', 0],
    ['1h', 3_600_000],
    ['1m30s', 90_000],
    ['.5s', 500],
    ['1.s', 1000],
    ['1000us', 1],
    ['1000µs', 1],
    ['1000000ns', 1],
    ['1h1m1s1ms', 3_661_001],
    ['2h45m', 9_900_000],
    ['1.5h', 5_400_000],
    ['10s10s', 20_000],
  ];
  for (const [s, ms] of cases) t.equal(parseDuration(s), ms, s);
  t.ok(Math.abs(parseDuration('1ns') - 1e-6) < 1e-12, 'sub-millisecond values are fractional ms');
  for (const bad of ['2x', '', 'm', '2', '1.5', 's1', '1 s', ' 1s', '1s ', '1S', '1d', '-', '.s', '1h-30m', '1ms2']) {
    t.equal(
      errMsg(() => parseDuration(bad)),
      `invalid duration ${JSON.stringify(bad)}`,
      JSON.stringify(bad),
    );
  }
});

t.test('parseDuration accepts every form Go time.ParseDuration accepts', async (t) => {
  // Go: "[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+", and both micro signs: "µs" (U+00B5) and "μs" (U+03BC).
  t.equal(
    errMsg(() => parseDuration('+2m')),
    '<no error>',
    'leading + sign (Go accepts)',
  );
  t.equal(
    errMsg(() => parseDuration('1000\u03bcs')),
    '<no error>',
    'Greek mu micro sign (Go accepts)',
  );
  t.equal(parseDuration('1000\u00b5s'), 1, 'micro sign U+00B5');
});

t.test('usage lists every flag once', async (t) => {
  const u = usage();
  const names = [...u.matchAll(/^ {2}--([a-z_-]+)/gm)].map((m) => m[1]);
  for (const n of [
    'endpoint',
    'nodeid',
    'drivername',
    'provider-volume',
    'additional-provider-volume-paths',
    'enable-secret-rotation',
    'rotation-poll-interval',
    'metrics-addr',
    'max-call-recv-msg-size',
    'kubeconfig',
    'kubelet-registration-path',
    'plugin-registration-path',
    'version',
    'help',
    'log-format-json',
    'v',
  ]) {
    t.ok(names.includes(n), `usage mentions --${n}`);
  }
  t.notOk(names.includes('h'), '-h is an alias, not listed');
  t.equal(new Set(names).size, names.length, 'no duplicates');
  t.match(u, /--endpoint <string>/);
  t.match(u, /--version\n/);
  t.match(u, /--rotation-poll-interval <duration>/);
});

// The flags type is complete: every key of DriverFlags is reachable from argv.
t.test('every DriverFlags field can be set from the command line', async (t) => {
  const f = parseFlags([
    '--endpoint=e',
    '--nodeid=n',
    '--drivername=d',
    '--provider-volume=p',
    '--additional-provider-volume-paths=a',
    '--enable-secret-rotation=false',
    '--rotation-poll-interval=1s',
    '--rotation-concurrency=1',
    '--provider-timeout=1s',
    '--metrics-addr=m',
    '--max-call-recv-msg-size=1',
    '--kubeconfig=k',
    '--secret-provider-class-dir=s',
    '--fuse-mount-dir=fm',
    '--kubelet-root-dir=kr',
    '--log-level=l',
    '--lock-memory=false',
    '--inotify-events=false',
    '--audit-reads',
    '--keeper-socket=ks',
    '--delete-pods-with-dead-mounts',
    '--kubelet-registration-path=krp',
    '--plugin-registration-path=prp',
    '--version',
    '--help',
  ]);
  const d = defaultFlags();
  for (const k of Object.keys(d) as Array<keyof DriverFlags>) {
    t.notSame(f[k], d[k], `${k} changed from its default`);
  }
});
