// The Kubernetes API clients the driver uses, from one cluster configuration:
// in-cluster when running in a pod, else --kubeconfig / KUBECONFIG; never a
// silent localhost fallback. A small client of our own (./client/): loading
// @kubernetes/client-node cost the driver most of its start time and memory.

import { loadClusterConfig } from './client/config.js';
import { ApiError, KubeHttp } from './client/http.js';
import { CoreClient, SecretsStoreClient } from './client/resources.js';

export class KubeApi {
  readonly core: CoreClient;
  readonly secretsStore: SecretsStoreClient;
  constructor(readonly http: KubeHttp) {
    this.core = new CoreClient(http);
    this.secretsStore = new SecretsStoreClient(http);
  }

  static async connect(kubeconfig?: string): Promise<KubeApi> {
    return new KubeApi(new KubeHttp(await loadClusterConfig(kubeconfig)));
  }

  close(): void {
    this.http.close();
  }
}

/** HTTP status of an API error, or undefined for anything else (network, bug). */
export function apiStatus(e: unknown): number | undefined {
  return e instanceof ApiError ? e.status : undefined;
}

/** A short, secret-free description of an API error: status and the server's message. */
export function apiErrorText(e: unknown): string {
  if (e instanceof ApiError) return `HTTP ${e.status}${e.serverMessage ? `: ${e.serverMessage}` : ''}`;
  return (e as Error)?.message ?? String(e);
}
