// The operator's Kubernetes configuration and API error helpers, on
// @kubernetes/client-node (the driver has its own small client, src/kube/client/).

import { ApiException, KubeConfig } from '@kubernetes/client-node';

/** In-cluster when running in a pod, else --kubeconfig / KUBECONFIG; never the silent localhost fallback of loadFromDefault(). */
export function loadKubeConfig(kubeconfig?: string): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else if (process.env.KUBECONFIG) kc.loadFromDefault();
  else throw new Error('no Kubernetes configuration: not in a cluster, and neither --kubeconfig nor KUBECONFIG is set');
  return kc;
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
