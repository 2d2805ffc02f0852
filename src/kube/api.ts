// The Kubernetes API clients the driver uses, from one KubeConfig: in-cluster
// when running in a pod, else --kubeconfig / KUBECONFIG; never the silent
// localhost fallback of loadFromDefault().

import { ApiException, CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';

export function loadKubeConfig(kubeconfig?: string): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else if (process.env.KUBECONFIG) kc.loadFromDefault();
  else throw new Error('no Kubernetes configuration: not in a cluster, and neither --kubeconfig nor KUBECONFIG is set');
  return kc;
}

export class KubeApi {
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  constructor(readonly kc: KubeConfig) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
  }
}

/** HTTP status of an API error, or undefined for anything else (network, bug). */
export function apiStatus(e: unknown): number | undefined {
  return e instanceof ApiException ? e.code : undefined;
}

/** A short, secret-free description of an API error: status and the server's message. */
export function apiErrorText(e: unknown): string {
  if (e instanceof ApiException) {
    let msg: string;
    try {
      msg = (JSON.parse(String(e.body)) as { message?: string }).message ?? '';
    } catch {
      msg = '';
    }
    return `HTTP ${e.code}${msg ? `: ${msg}` : ''}`;
  }
  return (e as Error)?.message ?? String(e);
}
