// SecretProviderClasses from the Kubernetes API: an informer (list + watch of
// secretproviderclasses in all namespaces, as upstream's cache), looked up in
// the pod's namespace. A miss in the cache is checked against the API server
// once, so an SPC created just before the pod is not reported missing.

import {
  ApiException, CustomObjectsApi, KubeConfig, makeInformer,
  type Informer, type KubernetesListObject, type KubernetesObject, type ObjectCache,
} from '@kubernetes/client-node';
import { errors } from '../errors.js';
import { SPC_GROUP, SPC_PLURAL, spcNotFound, type SecretProviderClass, type SpcSource } from './types.js';

type SpcObject = SecretProviderClass & KubernetesObject;

export interface KubeSpcSourceOptions {
  readonly kubeconfig?: string;
  readonly log: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
}

/** In-cluster config when running in a pod, else the --kubeconfig file; never a silent localhost fallback. */
export function loadKubeConfig(kubeconfig?: string): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else if (process.env.KUBECONFIG) kc.loadFromDefault();
  else throw new Error('no Kubernetes configuration: not in a cluster, and neither --kubeconfig nor KUBECONFIG is set');
  return kc;
}

export class KubeSpcSource implements SpcSource {
  private readonly api: CustomObjectsApi;
  private readonly informer: Informer<SpcObject> & ObjectCache<SpcObject>;
  private stopped = false;

  private constructor(kc: KubeConfig, private readonly log: KubeSpcSourceOptions['log']) {
    this.api = kc.makeApiClient(CustomObjectsApi);
    this.informer = makeInformer<SpcObject>(kc, `/apis/${SPC_GROUP}/v1/${SPC_PLURAL}`,
      () => this.api.listClusterCustomObject({ group: SPC_GROUP, version: 'v1', plural: SPC_PLURAL }) as
        Promise<KubernetesListObject<SpcObject>>);
    this.informer.on('error', (err: unknown) => {
      if (this.stopped) return;
      this.log.warn({ err: (err as Error)?.message }, 'secretproviderclass watch failed; restarting in 5s');
      setTimeout(() => { if (!this.stopped) void this.informer.start().catch(() => undefined); }, 5000).unref();
    });
  }

  static async start(opts: KubeSpcSourceOptions): Promise<KubeSpcSource> {
    const src = new KubeSpcSource(loadKubeConfig(opts.kubeconfig), opts.log);
    await src.informer.start();
    opts.log.info({}, 'secretproviderclass informer synced');
    return src;
  }

  async get(namespace: string, name: string): Promise<SecretProviderClass> {
    const cached = this.informer.get(name, namespace);
    if (cached) return cached;
    try {
      return await this.api.getNamespacedCustomObject({ group: SPC_GROUP, version: 'v1', namespace, plural: SPC_PLURAL, name }) as SecretProviderClass;
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
