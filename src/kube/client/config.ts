// Where the API server is and how to authenticate to it: the in-cluster
// service account (token re-read as it rotates) or a kubeconfig file. Only
// static credentials are supported; exec and auth-provider plugins would run
// other programs and are refused by name.

import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** Bound service-account tokens rotate; the file is read again at most this often (and after a 401). */
const TOKEN_REREAD_MS = 60_000;

export interface ClusterConfig {
  /** Base URL, without a trailing slash. */
  readonly server: string;
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly insecureSkipTlsVerify: boolean;
  /** The namespace of the service account (in-cluster), or the context's. */
  readonly namespace?: string;
  /** The bearer token to send now, if any. */
  token(): string | undefined;
  /** The server said 401: read the token file again at the next request. */
  tokenRejected(): void;
}

/** A token from a file that may be replaced under us (projected service-account tokens). */
class FileToken {
  private value: string | undefined;
  private readAt = 0;
  private mtimeMs = -1;
  constructor(
    private readonly file: string,
    private readonly now: () => number = Date.now,
  ) {}

  get(): string {
    const t = this.now();
    if (this.value === undefined || t - this.readAt >= TOKEN_REREAD_MS) {
      this.readAt = t;
      const m = statSync(this.file).mtimeMs;
      if (this.value === undefined || m !== this.mtimeMs) {
        this.value = readFileSync(this.file, 'utf8').trim();
        this.mtimeMs = m;
      }
    }
    return this.value;
  }

  invalidate(): void {
    this.value = undefined;
  }
}

export interface InClusterOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** Prefix for the service-account directory (tests put the layout in a temp dir). */
  readonly root?: string;
  readonly now?: () => number;
}

export function loadInCluster(o: InClusterOptions = {}): ClusterConfig {
  const env = o.env ?? process.env;
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) throw new Error('not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set');
  const dir = join(o.root ?? '/', SERVICE_ACCOUNT_DIR);
  const token = new FileToken(join(dir, 'token'), o.now);
  token.get(); // fail now, not at the first request, if there is no token
  let namespace: string | undefined;
  try {
    namespace = readFileSync(join(dir, 'namespace'), 'utf8').trim();
  } catch {
    namespace = undefined;
  }
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: readFileSync(join(dir, 'ca.crt')),
    insecureSkipTlsVerify: false,
    ...(namespace ? { namespace } : {}),
    token: () => token.get(),
    tokenRejected: () => token.invalidate(),
  };
}

interface Named<T> {
  name?: string;
  cluster?: T;
  user?: T;
  context?: T;
}
type Fields = Record<string, unknown>;

function pick(list: unknown, name: string | undefined, what: string): Fields {
  const items = Array.isArray(list) ? (list as Array<Named<Fields>>) : [];
  const hit = name === undefined ? items[0] : items.find((i) => i.name === name);
  if (!hit) throw new Error(`kubeconfig: ${what} ${name ?? ''} not found`.replace('  ', ' '));
  return (hit.cluster ?? hit.user ?? hit.context ?? {}) as Fields;
}

/** A `<field>-data` (base64) or `<field>` (file path, relative to the kubeconfig). */
function material(o: Fields, field: string, base: string): Buffer | undefined {
  const data = o[`${field}-data`];
  if (typeof data === 'string' && data) return Buffer.from(data, 'base64');
  const file = o[field];
  if (typeof file === 'string' && file) return readFileSync(isAbsolute(file) ? file : join(base, file));
  return undefined;
}

/** Async only to load the YAML parser here: a driver with the in-cluster configuration never loads it. */
export async function loadKubeconfigFile(file: string): Promise<ClusterConfig> {
  const { parse } = await import('yaml');
  const doc = (parse(readFileSync(file, 'utf8')) ?? {}) as Fields;
  const base = dirname(file);
  const current = typeof doc['current-context'] === 'string' ? (doc['current-context'] as string) : undefined;
  const ctx = pick(doc.contexts, current, 'context');
  const cluster = pick(doc.clusters, ctx.cluster as string | undefined, 'cluster');
  const user = ctx.user === undefined && !Array.isArray(doc.users) ? {} : pick(doc.users, ctx.user as string | undefined, 'user');
  if (user.exec)
    throw new Error(
      'kubeconfig: the user uses an exec credential plugin, which this driver does not run; use a token or client certificate',
    );
  if (user['auth-provider'])
    throw new Error(
      'kubeconfig: the user uses an auth-provider plugin, which this driver does not support; use a token or client certificate',
    );
  if (typeof cluster.server !== 'string' || !cluster.server) throw new Error('kubeconfig: the cluster has no server');
  let token: () => string | undefined = () => undefined;
  let rejected = (): void => undefined;
  if (typeof user.token === 'string' && user.token) {
    const t = user.token;
    token = () => t;
  } else if (typeof user.tokenFile === 'string' && user.tokenFile) {
    const f = new FileToken(isAbsolute(user.tokenFile) ? user.tokenFile : join(base, user.tokenFile));
    token = () => f.get();
    rejected = () => f.invalidate();
  }
  const ca = material(cluster, 'certificate-authority', base);
  const cert = material(user, 'client-certificate', base);
  const key = material(user, 'client-key', base);
  return {
    server: cluster.server.replace(/\/+$/, ''),
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    insecureSkipTlsVerify: cluster['insecure-skip-tls-verify'] === true,
    ...(typeof ctx.namespace === 'string' ? { namespace: ctx.namespace } : {}),
    token,
    tokenRejected: rejected,
  };
}

/** In-cluster when running in a pod, else --kubeconfig / KUBECONFIG; never a silent localhost fallback. */
export async function loadClusterConfig(kubeconfig?: string, env: NodeJS.ProcessEnv = process.env): Promise<ClusterConfig> {
  if (kubeconfig) return loadKubeconfigFile(kubeconfig);
  if (env.KUBERNETES_SERVICE_HOST) return loadInCluster({ env });
  // KUBECONFIG may list several files; the first is used (merging is not supported).
  const first = env.KUBECONFIG?.split(':').find((f) => f);
  if (first) return loadKubeconfigFile(first);
  throw new Error('no Kubernetes configuration: not in a cluster, and neither --kubeconfig nor KUBECONFIG is set');
}
