// Command-line flags, parsed the way Go's flag package does (upstream is a Go
// program, and its manifests must work unchanged): -name or --name, a value
// as -name=value or -name value, booleans as -name or -name=false. Unknown
// flags are an error, except upstream flags we accept and ignore.

export interface DriverFlags {
  endpoint: string;
  nodeId: string;
  driverName: string;
  providerVolume: string;
  additionalProviderVolumePaths: string[];
  enableSecretRotation: boolean;
  rotationPollIntervalMs: number;
  rotationConcurrency: number;
  providerTimeoutMs: number;
  metricsAddr: string;
  maxCallRecvMsgSize: number;
  kubeconfig: string;
  secretProviderClassDir: string;
  fuseMountDir: string;
  kubeletRootDir: string;
  logLevel: string;
  lockMemory: boolean;
  inotifyEvents: boolean;
  auditReads: boolean;
  keeperSocket: string;
  deletePodsWithDeadMounts: boolean;
  kubeletRegistrationPath: string;
  pluginRegistrationPath: string;
  version: boolean;
  help: boolean;
}

type Kind = 'string' | 'bool' | 'duration' | 'int' | 'list';
interface Spec {
  key: keyof DriverFlags | null;
  kind: Kind;
  help: string;
}

const SPECS: Record<string, Spec> = {
  endpoint: { key: 'endpoint', kind: 'string', help: 'CSI endpoint (unix:///path or tcp://host:port)' },
  nodeid: { key: 'nodeId', kind: 'string', help: 'node name (NodeGetInfo)' },
  drivername: { key: 'driverName', kind: 'string', help: 'name of the driver' },
  'provider-volume': { key: 'providerVolume', kind: 'string', help: 'directory of provider sockets' },
  'additional-provider-volume-paths': {
    key: 'additionalProviderVolumePaths',
    kind: 'list',
    help: 'comma-separated directories searched for provider sockets before --provider-volume',
  },
  'enable-secret-rotation': { key: 'enableSecretRotation', kind: 'bool', help: 're-poll every volume every --rotation-poll-interval' },
  'rotation-poll-interval': { key: 'rotationPollIntervalMs', kind: 'duration', help: 'how often each volume is re-polled' },
  'rotation-concurrency': { key: 'rotationConcurrency', kind: 'int', help: 'at most this many polls at once' },
  'provider-timeout': {
    key: 'providerTimeoutMs',
    kind: 'duration',
    help: 'deadline of a provider call that has no caller deadline (polls)',
  },
  'metrics-addr': { key: 'metricsAddr', kind: 'string', help: 'address of the Prometheus /metrics endpoint (empty: off)' },
  'max-call-recv-msg-size': { key: 'maxCallRecvMsgSize', kind: 'int', help: 'largest provider response accepted, in bytes' },
  kubeconfig: { key: 'kubeconfig', kind: 'string', help: 'kubeconfig file (default: in-cluster config)' },
  'secret-provider-class-dir': {
    key: 'secretProviderClassDir',
    kind: 'string',
    help: 'read SecretProviderClass manifests from this directory instead of the Kubernetes API',
  },
  'fuse-mount-dir': { key: 'fuseMountDir', kind: 'string', help: 'where the node-wide FUSE connection is mounted (private to the driver)' },
  'kubelet-root-dir': {
    key: 'kubeletRootDir',
    kind: 'string',
    help: "kubelet's root directory: target paths outside it are refused (empty: no check)",
  },
  'log-level': { key: 'logLevel', kind: 'string', help: 'trace, debug, info, warn, error' },
  'keeper-socket': {
    key: 'keeperSocket',
    kind: 'string',
    help: 'unix socket of the keeper that holds the FUSE connection across restarts (empty: none)',
  },
  'delete-pods-with-dead-mounts': {
    key: 'deletePodsWithDeadMounts',
    kind: 'bool',
    help: 'delete pods whose secrets mount died with a previous driver, so their controllers recreate them (needs pods delete RBAC)',
  },
  'lock-memory': {
    key: 'lockMemory',
    kind: 'bool',
    help: 'keep secret bytes in locked memory so they never reach swap (needs CAP_IPC_LOCK)',
  },
  'inotify-events': {
    key: 'inotifyEvents',
    kind: 'bool',
    help: "make each rotation's directory changes as syscalls in a forked child, so inotify watchers see them as on tmpfs (false: switch inside the driver, silent for inotify, ~4 ms cheaper)",
  },
  'audit-reads': {
    key: 'auditReads',
    kind: 'bool',
    help: 'let volumes ask for read audit (secrets-store.csi.x-k8s.io/audit-reads: "true"): they are served on a second FUSE connection, <fuse-mount-dir>-audit, where every open reaches the driver; other volumes are not slowed (docs/audit.md)',
  },
  'kubelet-registration-path': {
    key: 'kubeletRegistrationPath',
    kind: 'string',
    help: 'the CSI socket path as kubelet sees it; when set, the driver registers itself with kubelet (no node-driver-registrar sidecar; docs/registrar.md). Empty: off',
  },
  'plugin-registration-path': {
    key: 'pluginRegistrationPath',
    kind: 'string',
    help: "kubelet's plugin registration directory, where the registration socket <drivername>-reg.sock is served",
  },
  version: { key: 'version', kind: 'bool', help: 'print the version and exit' },
  help: { key: 'help', kind: 'bool', help: 'print this help' },
  h: { key: 'help', kind: 'bool', help: 'print this help' },
  // Upstream flags that have no meaning here; accepted so upstream manifests run unchanged.
  'log-format-json': { key: null, kind: 'bool', help: 'ignored: logs are always JSON' },
  'metrics-backend': { key: null, kind: 'string', help: 'ignored: always prometheus' },
  'enable-pprof': { key: null, kind: 'bool', help: 'ignored' },
  'pprof-port': { key: null, kind: 'int', help: 'ignored' },
  'provider-health-check': { key: null, kind: 'bool', help: 'ignored' },
  'provider-health-check-interval': { key: null, kind: 'duration', help: 'ignored' },
  // klog's flags (klog.InitFlags, which upstream registers): accepted and ignored, logs are JSON on stderr.
  v: { key: null, kind: 'int', help: 'ignored (klog verbosity); use --log-level' },
  vmodule: { key: null, kind: 'string', help: 'ignored (klog)' },
  logtostderr: { key: null, kind: 'bool', help: 'ignored (klog)' },
  alsologtostderr: { key: null, kind: 'bool', help: 'ignored (klog)' },
  stderrthreshold: { key: null, kind: 'string', help: 'ignored (klog)' },
  log_dir: { key: null, kind: 'string', help: 'ignored (klog): nothing is logged to files' },
  log_file: { key: null, kind: 'string', help: 'ignored (klog): nothing is logged to files' },
  log_file_max_size: { key: null, kind: 'int', help: 'ignored (klog)' },
  log_backtrace_at: { key: null, kind: 'string', help: 'ignored (klog)' },
  add_dir_header: { key: null, kind: 'bool', help: 'ignored (klog)' },
  skip_headers: { key: null, kind: 'bool', help: 'ignored (klog)' },
  skip_log_headers: { key: null, kind: 'bool', help: 'ignored (klog)' },
  one_output: { key: null, kind: 'bool', help: 'ignored (klog)' },
};

export function defaultFlags(): DriverFlags {
  return {
    endpoint: 'unix://tmp/csi.sock',
    nodeId: '',
    driverName: 'secrets-store.csi.k8s.io',
    providerVolume: '/var/run/secrets-store-csi-providers',
    additionalProviderVolumePaths: ['/etc/kubernetes/secrets-store-csi-providers'],
    // Upstream defaults to false; polling is this driver's purpose, so it is on unless disabled.
    enableSecretRotation: true,
    rotationPollIntervalMs: 120_000,
    rotationConcurrency: 4,
    providerTimeoutMs: 60_000,
    metricsAddr: ':8095',
    maxCallRecvMsgSize: 4 * 1024 * 1024,
    kubeconfig: '',
    secretProviderClassDir: '',
    fuseMountDir: '/var/run/secrets-store-csi-driver/fuse',
    kubeletRootDir: '/var/lib/kubelet',
    logLevel: 'info',
    lockMemory: true,
    inotifyEvents: true,
    auditReads: false,
    keeperSocket: '',
    deletePodsWithDeadMounts: false,
    kubeletRegistrationPath: '',
    pluginRegistrationPath: '/var/lib/kubelet/plugins_registry',
    version: false,
    help: false,
  };
}

// µ is U+00B5 (micro sign) and μ is U+03BC (Greek mu); Go accepts both.
const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, '\u00b5s': 1e-3, '\u03bcs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go's time.ParseDuration, to milliseconds ("2m", "1h30m", "500ms", "120s", "-1.5h"). */
export function parseDuration(input: string): number {
  let s = input;
  let sign = 1;
  if (s.startsWith('-') || s.startsWith('+')) {
    sign = s[0] === '-' ? -1 : 1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/gy;
  let total = 0;
  let pos = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    pos = re.lastIndex;
  }
  if (pos !== s.length || pos === 0) throw new Error(`invalid duration ${JSON.stringify(input)}`);
  return sign * total;
}

/** Go's strconv.ParseInt(s, 0, 64) as flag.Int uses it: 0x/0o/0b prefixes, leading-0 octal, underscores. */
export function parseGoInt(input: string): number {
  const m = /^([+-]?)(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|0[0-7_]*|[1-9][0-9_]*)$/.exec(input);
  if (!m || /__|_$/.test(m[2]!) || (m[2]!.includes('_') && !/^0[xXoObB]?_?[0-9a-fA-F]/.test(m[2]!) && !/^[1-9]/.test(m[2]!))) {
    throw new Error(`invalid syntax ${JSON.stringify(input)}`);
  }
  const body = m[2]!.replace(/_/g, '');
  let v: number;
  if (/^0[xX]/.test(body)) v = parseInt(body.slice(2), 16);
  else if (/^0[oO]/.test(body)) v = parseInt(body.slice(2), 8);
  else if (/^0[bB]/.test(body)) v = parseInt(body.slice(2), 2);
  else if (body.length > 1 && body.startsWith('0')) v = parseInt(body.slice(1), 8);
  else v = parseInt(body, 10);
  if (!Number.isSafeInteger(v)) throw new Error(`value out of range ${JSON.stringify(input)}`);
  return m[1] === '-' ? -v : v;
}

function parseBool(s: string, name: string): boolean {
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(s)) return false;
  throw new Error(`invalid boolean value ${JSON.stringify(s)} for -${name}`);
}

export function parseFlags(argv: readonly string[]): DriverFlags {
  const out = defaultFlags() as unknown as Record<string, unknown>;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') break;
    const m = /^--?([^=]+)(?:=(.*))?$/s.exec(arg);
    if (!m) throw new Error(`unexpected argument ${JSON.stringify(arg)}`);
    const name = m[1]!;
    const spec = SPECS[name];
    if (!spec) throw new Error(`flag provided but not defined: -${name}`);
    let value = m[2];
    if (value === undefined) {
      if (spec.kind === 'bool') value = 'true';
      else if (i + 1 < argv.length) value = argv[++i]!;
      else throw new Error(`flag needs an argument: -${name}`);
    }
    let parsed: unknown;
    switch (spec.kind) {
      case 'bool':
        parsed = parseBool(value, name);
        break;
      case 'duration':
        parsed = parseDuration(value);
        break;
      case 'int': {
        try {
          parsed = parseGoInt(value);
        } catch (e) {
          // Go's flag package: `invalid value "x" for flag -name: parse error`.
          const why = /range/.test((e as Error).message) ? 'value out of range' : 'parse error';
          throw new Error(`invalid value ${JSON.stringify(value)} for flag -${name}: ${why}`, { cause: e });
        }
        break;
      }
      case 'list':
        parsed = value.split(',').filter((s) => s.length > 0);
        break;
      default:
        parsed = value;
    }
    if (spec.key) out[spec.key] = parsed;
  }
  const f = out as unknown as DriverFlags;
  if (f.rotationPollIntervalMs <= 0) throw new Error('--rotation-poll-interval must be positive');
  if (f.maxCallRecvMsgSize <= 0) throw new Error('--max-call-recv-msg-size must be positive');
  if (f.rotationConcurrency <= 0) throw new Error('--rotation-concurrency must be positive');
  if (f.kubeletRegistrationPath && !f.pluginRegistrationPath)
    throw new Error('--plugin-registration-path must be set with --kubelet-registration-path');
  return f;
}

export function usage(): string {
  return Object.entries(SPECS)
    .filter(([n]) => n !== 'h')
    .map(([n, s]) => `  --${n}${s.kind === 'bool' ? '' : ` <${s.kind}>`}\n      ${s.help}`)
    .join('\n');
}
