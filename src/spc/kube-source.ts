// SecretProviderClasses from the Kubernetes API: an informer (list + watch of
// secretproviderclasses in all namespaces, as upstream's cache), looked up in
// the pod's namespace. A miss in the cache is checked against the API server
// once, so an SPC created just before the pod is not reported missing, and
// so a publish arriving before the first list (the driver serves at once,
// the informer syncs in the background) is answered too.

import { errors } from '../errors.js';
import { SPC_PLURAL, spcNotFound, type SecretProviderClass, type SpcSource } from './types.js';
import { apiStatus, type KubeApi } from '../kube/api.js';
import { Informer } from '../kube/client/watch.js';
import { paths, type KubeObject } from '../kube/client/resources.js';

type SpcObject = SecretProviderClass & KubeObject;

export interface KubeSpcSourceOptions {
  readonly api: KubeApi;
  readonly log: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
}

export class KubeSpcSource implements SpcSource {
  private readonly informer: Informer<SpcObject>;

  constructor(private readonly o: KubeSpcSourceOptions) {
    this.informer = new Informer<SpcObject>(o.api.http, {
      path: paths.custom(SPC_PLURAL),
      what: 'secretproviderclass',
      warn: (f, m) => o.log.warn(f, m),
    });
  }

  /** The first list (retried while the server cannot answer); rejects when the server refuses it (401, 403, 404). */
  async start(): Promise<void> {
    await this.informer.start();
    this.o.log.info({}, 'secretproviderclass informer synced');
  }

  async get(namespace: string, name: string): Promise<SecretProviderClass> {
    const cached = this.informer.get(name, namespace);
    if (cached) return cached;
    try {
      return await this.o.api.secretsStore.get<SecretProviderClass>(SPC_PLURAL, namespace, name);
    } catch (e) {
      const status = apiStatus(e);
      if (status === 404) throw spcNotFound(namespace, name);
      const detail = status !== undefined ? `HTTP ${status}` : (e as Error).message;
      throw errors.spcUnavailable(`failed to get secretproviderclass ${namespace}/${name}, error: ${detail}`, e);
    }
  }

  async close(): Promise<void> {
    this.informer.stop();
  }
}
