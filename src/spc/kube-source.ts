// SecretProviderClasses from the Kubernetes API: an informer (list + watch of
// secretproviderclasses in all namespaces, as upstream's cache), looked up in
// the pod's namespace. A miss in the cache is checked against the API server
// once, so an SPC created just before the pod is not reported missing.

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

  private constructor(
    private readonly api: KubeApi,
    log: KubeSpcSourceOptions['log'],
  ) {
    this.informer = new Informer<SpcObject>(api.http, {
      path: paths.custom(SPC_PLURAL),
      what: 'secretproviderclass',
      warn: (f, m) => log.warn(f, m),
    });
  }

  static async start(opts: KubeSpcSourceOptions): Promise<KubeSpcSource> {
    const src = new KubeSpcSource(opts.api, opts.log);
    await src.informer.start();
    opts.log.info({}, 'secretproviderclass informer synced');
    return src;
  }

  async get(namespace: string, name: string): Promise<SecretProviderClass> {
    const cached = this.informer.get(name, namespace);
    if (cached) return cached;
    try {
      return await this.api.secretsStore.get<SecretProviderClass>(SPC_PLURAL, namespace, name);
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
