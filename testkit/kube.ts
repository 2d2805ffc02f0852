// Kubernetes helpers for the tests and the bench: server-side apply of
// manifests (with or without dry-run), service-account tokens through the
// TokenRequest API, and kubeconfigs for them. Everything goes to the real API
// server.

import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ApiextensionsV1Api,
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { sleep } from './wait.js';
import { kubeconfigYaml, type ControlPlane } from './control-plane.js';

export function adminConfig(cp: ControlPlane): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(cp.adminKubeconfig);
  return kc;
}

export async function manifests(dir: string): Promise<KubernetesObject[]> {
  const out: KubernetesObject[] = [];
  // deploy/operator/ installs the operator, not the driver: only read when asked for directly.
  const files = (await readdir(dir, { recursive: true })).filter((f) => /\.ya?ml$/.test(f) && !f.startsWith('operator/')).sort();
  for (const f of files) {
    for (const doc of parseAllDocuments(await readFile(join(dir, f), 'utf8'))) {
      const obj = doc.toJS() as KubernetesObject | null;
      if (obj?.kind) out.push(obj);
    }
  }
  return out;
}

/** Server-side apply; with dryRun the server validates (schema, admission) and persists nothing. */
export async function apply(kc: KubeConfig, objs: KubernetesObject[], opts: { dryRun?: boolean } = {}): Promise<KubernetesObject[]> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  const out: KubernetesObject[] = [];
  for (const o of objs) {
    out.push(await api.patch(o, undefined, opts.dryRun ? 'All' : undefined, 'sscsi-tests', true, PatchStrategy.ServerSideApply));
  }
  return out;
}

export async function token(
  kc: KubeConfig,
  namespace: string,
  sa: string,
  o: { audiences?: string[]; pod?: { name: string; uid: string }; seconds?: number } = {},
): Promise<{ token: string; expirationTimestamp: string }> {
  const core = kc.makeApiClient(CoreV1Api);
  const res = await core.createNamespacedServiceAccountToken({
    namespace,
    name: sa,
    body: {
      spec: {
        audiences: o.audiences ?? [],
        expirationSeconds: o.seconds ?? 3600,
        ...(o.pod ? { boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: o.pod.name, uid: o.pod.uid } } : {}),
      },
    },
  });
  const st = res.status;
  if (!st?.token || !st.expirationTimestamp) throw new Error('TokenRequest returned no token');
  return { token: st.token, expirationTimestamp: new Date(st.expirationTimestamp).toISOString() };
}

/** A kubeconfig file that authenticates as a service account, by a token from TokenRequest. */
export async function serviceAccountKubeconfig(
  cp: ControlPlane,
  kc: KubeConfig,
  namespace: string,
  sa: string,
  file: string,
): Promise<string> {
  const t = await token(kc, namespace, sa, { audiences: ['https://kubernetes.default.svc.cluster.local'] });
  await writeFile(file, kubeconfigYaml(cp.server, cp.caFile, t.token, `system:serviceaccount:${namespace}:${sa}`), { mode: 0o600 });
  return file;
}

export async function eventually<T>(fn: () => Promise<T | null | undefined | false>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(200);
  }
}

/** Applies the CustomResourceDefinitions among `objs` and waits until each is Established. */
export async function applyCrds(kc: KubeConfig, objs: readonly KubernetesObject[]): Promise<KubernetesObject[]> {
  const crds = objs.filter((o) => o.kind === 'CustomResourceDefinition');
  await apply(kc, crds);
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  for (const c of crds) {
    await eventually(
      async () => {
        const crd = await ext.readCustomResourceDefinition({ name: c.metadata!.name! });
        return crd.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True');
      },
      30_000,
      `${c.metadata!.name} established`,
    );
  }
  return crds;
}
