// The few API resources the driver touches: minimal typed shapes (only the
// fields it reads or writes, plus whatever the server sent, kept as is on
// replace) and their request paths.

import type { KubeHttp } from './http.js';

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  [field: string]: unknown;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
}

export interface KubeList<T> {
  metadata?: { resourceVersion?: string };
  items: T[];
}

export interface Pod extends KubeObject {
  spec?: {
    nodeName?: string;
    volumes?: Array<{ name: string; csi?: { driver: string; volumeAttributes?: Record<string, string> } }>;
    [field: string]: unknown;
  };
  status?: { phase?: string; [field: string]: unknown };
}

export interface Secret extends KubeObject {
  type?: string;
  data?: Record<string, string>;
  [field: string]: unknown;
}

export interface CoreEvent extends KubeObject {
  involvedObject: { apiVersion: string; kind: string; name: string; namespace: string; uid: string };
  type: string;
  reason: string;
  message: string;
  source: { component: string; host: string };
  reportingComponent: string;
  reportingInstance: string;
  firstTimestamp: string;
  lastTimestamp: string;
  count: number;
}

export const SECRETS_STORE_GROUP = 'secrets-store.csi.x-k8s.io';
export const SPC_RESOURCE = 'secretproviderclasses';
export const SPCPS_RESOURCE = 'secretproviderclasspodstatuses';

const enc = encodeURIComponent;

/** Collection paths, for lists and informers. */
export const paths = {
  allPods: '/api/v1/pods',
  custom: (resource: string, namespace?: string): string =>
    namespace === undefined
      ? `/apis/${SECRETS_STORE_GROUP}/v1/${resource}`
      : `/apis/${SECRETS_STORE_GROUP}/v1/namespaces/${enc(namespace)}/${resource}`,
  core: (resource: string, namespace: string): string => `/api/v1/namespaces/${enc(namespace)}/${resource}`,
};

/** Typed calls for the core/v1 objects the driver reads and writes. */
export class CoreClient {
  constructor(private readonly http: KubeHttp) {}

  listPods(fieldSelector: string): Promise<KubeList<Pod>> {
    return this.http.request('GET', paths.allPods, { query: { fieldSelector } });
  }
  getPod(namespace: string, name: string): Promise<Pod> {
    return this.http.request('GET', `${paths.core('pods', namespace)}/${enc(name)}`);
  }
  deletePod(namespace: string, name: string): Promise<unknown> {
    return this.http.request('DELETE', `${paths.core('pods', namespace)}/${enc(name)}`);
  }
  getSecret(namespace: string, name: string): Promise<Secret> {
    return this.http.request('GET', `${paths.core('secrets', namespace)}/${enc(name)}`);
  }
  createSecret(namespace: string, body: Secret): Promise<Secret> {
    return this.http.request('POST', paths.core('secrets', namespace), { body: { apiVersion: 'v1', kind: 'Secret', ...body } });
  }
  replaceSecret(namespace: string, name: string, body: Secret): Promise<Secret> {
    return this.http.request('PUT', `${paths.core('secrets', namespace)}/${enc(name)}`, {
      body: { apiVersion: 'v1', kind: 'Secret', ...body },
    });
  }
  createEvent(namespace: string, body: CoreEvent): Promise<CoreEvent> {
    return this.http.request('POST', paths.core('events', namespace), { body: { apiVersion: 'v1', kind: 'Event', ...body } });
  }
}

/** Typed calls for the secrets-store.csi.x-k8s.io/v1 objects. */
export class SecretsStoreClient {
  constructor(private readonly http: KubeHttp) {}

  get<T>(resource: string, namespace: string, name: string): Promise<T> {
    return this.http.request('GET', `${paths.custom(resource, namespace)}/${enc(name)}`);
  }
  create<T>(resource: string, namespace: string, body: T): Promise<T> {
    return this.http.request('POST', paths.custom(resource, namespace), { body });
  }
  replace<T>(resource: string, namespace: string, name: string, body: T): Promise<T> {
    return this.http.request('PUT', `${paths.custom(resource, namespace)}/${enc(name)}`, { body });
  }
}
