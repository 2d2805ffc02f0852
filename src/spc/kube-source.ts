// SecretProviderClasses from the Kubernetes API: an informer (list + watch of
// secretproviderclasses in all namespaces, as upstream's cache), looked up in
// the pod's namespace. A miss in the cache is checked against the API server
// once, so an SPC created just before the pod is not reported missing.

import {
  ApiException,
  CustomObjectsApi,
  makeInformer,
  type KubeConfig,
  type Informer,
  type KubernetesListObject,
  type KubernetesObject,
  type ObjectCache,
} from '@kubernetes/client-node';
import { errors } from '../errors.js';
import { SPC_GROUP, SPC_PLURAL, spcNotFound, type SecretProviderClass, type SpcSource } from './types.js';
import { restartOnError } from '../kube/informer-restart.js';

type SpcObject = SecretProviderClass & KubernetesObject;

export interface KubeSpcSourceOptions {
  readonly kc: KubeConfig;
  readonly log: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
}

export class KubeSpcSource implements SpcSource {
  private readonly api: CustomObjectsApi;
  private readonly informer: Informer<SpcObject> & ObjectCache<SpcObject>;
  private stopped = false;

  private constructor(
    kc: KubeConfig,
    private readonly log: KubeSpcSourceOptions['log'],
  ) {
    this.api = kc.makeApiClient(CustomObjectsApi);
    this.informer = makeInformer<SpcObject>(
      kc,
      `/apis/${SPC_GROUP}/v1/${SPC_PLURAL}`,
      () =>
        this.api.listClusterCustomObject({ group: SPC_GROUP, version: 'v1', plural: SPC_PLURAL }) as Promise<
          KubernetesListObject<SpcObject>
        >,
    );
    restartOnError(this.informer, { what: 'secretproviderclass', warn: (f, m) => this.log.warn(f, m), stopped: () => this.stopped });
  }

  static async start(opts: KubeSpcSourceOptions): Promise<KubeSpcSource> {
    const src = new KubeSpcSource(opts.kc, opts.log);
    await src.informer.start();
    opts.log.info({}, 'secretproviderclass informer synced');
    return src;
  }

  async get(namespace: string, name: string): Promise<SecretProviderClass> {
    const cached = this.informer.get(name, namespace);
    if (cached) return cached;
    try {
      return (await this.api.getNamespacedCustomObject({
        group: SPC_GROUP,
        version: 'v1',
        namespace,
        plural: SPC_PLURAL,
        name,
      })) as SecretProviderClass;
    } catch (e) {
      if (e instanceof ApiException && e.code === 404) throw spcNotFound(namespace, name);
      const detail = e instanceof ApiException ? `HTTP ${e.code}` : (e as Error).message;
      throw errors.spcUnavailable(`failed to get secretproviderclass ${namespace}/${name}, error: ${detail}`, e);
    }
  }

  async close(): Promise<void> {
    this.stopped = true;
    await this.informer.stop();
  }
}
