// Keeps Kubernetes Secrets in sync with mounted volumes (spec.secretObjects),
// as upstream's SecretProviderClassPodStatus controller does:
// - it reconciles this node's SecretProviderClassPodStatus objects (watch
//   filtered by the node label), using this node's Pods (field selector
//   spec.nodeName) and the SecretProviderClasses;
// - each Secret gets the requested type, labels, annotations and
//   secrets-store.csi.k8s.io/managed=true, its data taken from the mounted
//   objects by objectName (kubernetes.io/tls keys extracted from PEM/PFX);
// - owners are the pod's own owners (e.g. its ReplicaSet), or the status
//   object for a bare pod, merged into what the Secret already has, so the
//   garbage collector deletes the Secret once every owner is gone;
// - success re-checks after 5 minutes (repairs deleted Secrets), failures
//   retry after 10 s; Events on the Pod say what happened.
//
// Unlike upstream, the data is read from the driver's memory, not from the
// mount (a process must never read its own FUSE mount synchronously), and an
// existing Secret is updated in place, keeping its other owners.

import type { Logger } from 'pino';
import type { SpcSource, SecretObject } from '../spc/types.js';
import { WorkQueue, type ReconcileResult } from '../util/work-queue.js';
import { apiErrorText, apiStatus, type KubeApi } from './api.js';
import { EventReason, type EventRecorder, type PodRef } from './events.js';
import { GROUP, NODE_LABEL, SPCPS_PLURAL, type PodStatusObject } from './pod-status.js';
import { secretDataFor } from './tls/index.js';
import { Informer } from './client/watch.js';
import { paths, type KubeObject, type OwnerReference, type Pod, type Secret } from './client/resources.js';

export const MANAGED_LABEL = 'secrets-store.csi.k8s.io/managed';
export const SYNC_FORBIDDEN_WARNING =
  'The secret operation failed with forbidden error. If you installed the CSI driver using helm, ensure syncSecret.enabled=true is set.';
const TARGET_PATH_RE = /[\\/]+pods[\\/]+(.+?)[\\/]+volumes[\\/]+kubernetes\.io~csi[\\/]+(.+?)[\\/]+mount$/;

export interface SecretSyncOptions {
  readonly api: KubeApi;
  readonly nodeId: string;
  readonly driverName: string;
  readonly spcs: SpcSource;
  /** The bytes served for `objectName` in the volume at `targetPath`, or null. */
  readonly readFile: (targetPath: string, objectName: string) => Buffer | null;
  readonly events: EventRecorder;
  readonly log: Logger;
  readonly resyncMs?: number;
  readonly retryMs?: number;
}

type SpcpsObject = PodStatusObject & KubeObject;

/** Upstream's ValidateSecretObject. */
export function validateSecretObject(o: SecretObject): string | null {
  if (!o.secretName) return 'secret name is empty';
  if (!o.type) return 'secret type is empty';
  if (!o.data || o.data.length === 0) return 'data is empty';
  return null;
}

/** Upstream's GetSecretData, reading the served bytes from memory; `targetPath` names the file in errors. */
export function secretData(o: SecretObject, read: (objectName: string) => Buffer | null, targetPath = ''): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  const type = (o.type ?? '').trim() || 'Opaque';
  for (const d of o.data ?? []) {
    const objectName = (d.objectName ?? '').trim();
    const key = (d.key ?? '').trim();
    if (!objectName) throw new Error('object name in secretObjects.data');
    if (!key) throw new Error('key in secretObjects.data is empty');
    const bytes = read(objectName);
    if (!bytes) throw new Error(`file matching objectName ${objectName} not found in the pod`);
    out[key] = secretDataFor(type, key, bytes, `${targetPath}/${objectName}`);
  }
  return out;
}

function sameMap(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

function sameOwner(a: OwnerReference, b: OwnerReference): boolean {
  return a.uid === b.uid && a.kind === b.kind && a.name === b.name;
}

export class SecretSync {
  private readonly queue: WorkQueue;
  private spcpsInformer: Informer<SpcpsObject> | null = null;
  private podInformer: Informer<Pod> | null = null;
  private readonly resyncMs: number;
  /** Status objects this driver wrote and has not reconciled yet, by namespace/name. */
  private readonly written = new Map<string, SpcpsObject>();

  constructor(private readonly o: SecretSyncOptions) {
    this.resyncMs = o.resyncMs ?? 5 * 60_000;
    this.queue = new WorkQueue(
      (k) => this.reconcile(k),
      (k, e) => o.log.warn({ spcps: k, err: (e as Error).message }, 'secret sync failed'),
      o.retryMs ?? 10_000,
    );
  }

  async start(): Promise<void> {
    const { api, nodeId } = this.o;
    const warn = (f: Record<string, unknown>, m: string): void => this.o.log.warn(f, m);
    this.spcpsInformer = new Informer<SpcpsObject>(api.http, {
      path: paths.custom(SPCPS_PLURAL),
      labelSelector: `${NODE_LABEL}=${nodeId}`,
      what: 'secret sync',
      warn,
    });
    this.podInformer = new Informer<Pod>(api.http, {
      path: paths.allPods,
      fieldSelector: `spec.nodeName=${nodeId}`,
      what: 'secret sync',
      warn,
    });
    const enqueue = (obj: KubeObject): void => {
      if (obj.metadata?.namespace && obj.metadata.name) this.queue.add(`${obj.metadata.namespace}/${obj.metadata.name}`);
    };
    // Creates and updates of this node's status objects; deletes are ignored, as upstream.
    this.spcpsInformer.on('add', enqueue);
    this.spcpsInformer.on('update', enqueue);
    await this.podInformer.start();
    await this.spcpsInformer.start();
  }

  /** Sync now, right after a mount or rotation wrote the status object `written` (the API server's answer). */
  enqueue(written: PodStatusObject): void {
    const key = `${written.metadata.namespace}/${written.metadata.name}`;
    this.written.set(key, written as SpcpsObject);
    this.queue.add(key);
  }

  stop(): Promise<void> {
    this.queue.stop();
    this.written.clear();
    this.spcpsInformer?.stop();
    this.podInformer?.stop();
    return Promise.resolve();
  }

  private async pod(namespace: string, name: string): Promise<Pod | null> {
    const cached = this.podInformer?.get(name, namespace);
    if (cached) return cached;
    try {
      return await this.o.api.core.getPod(namespace, name);
    } catch (e) {
      if (apiStatus(e) === 404) return null;
      throw e;
    }
  }

  /**
   * The status object to reconcile: the one this driver just wrote (the
   * API server's answer to that write), else the informer's copy, else a GET.
   * The fields read here (pod, class, target path, node label) never change
   * for an object; a copy whose target path names another pod is fetched
   * again once, in case it was a recreated object's predecessor.
   */
  private async spcps(namespace: string, name: string, fresh: boolean): Promise<SpcpsObject | null> {
    const key = `${namespace}/${name}`;
    const known = fresh ? undefined : (this.written.get(key) ?? this.spcpsInformer?.get(name, namespace));
    this.written.delete(key);
    if (known) return known;
    try {
      return await this.o.api.secretsStore.get<SpcpsObject>(SPCPS_PLURAL, namespace, name);
    } catch (e) {
      if (apiStatus(e) === 404) return null;
      throw e;
    }
  }

  async reconcile(key: string, fresh = false): Promise<ReconcileResult> {
    const [namespace, name] = key.split('/') as [string, string];
    const { log } = this.o;
    const spcps = await this.spcps(namespace, name, fresh);
    if (!spcps) return {};
    // Only a GET can name another node: what this driver wrote and what its informer (by label) holds are this node's.
    if (spcps.metadata.labels?.[NODE_LABEL] !== this.o.nodeId) return {};
    const podName = spcps.status.podName;
    const pod = await this.pod(namespace, podName);
    if (!pod) return { requeueAfterMs: 5000 };
    if (pod.metadata?.deletionTimestamp || pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') return {};
    const podRef: PodRef = { name: podName, namespace, uid: pod.metadata?.uid ?? '' };

    let spc;
    try {
      spc = await this.o.spcs.get(namespace, spcps.status.secretProviderClassName);
    } catch {
      return { requeueAfterMs: 5000 };
    }
    const objects = spc.spec?.secretObjects ?? [];
    if (objects.length === 0) return {};

    const vol = (pod.spec?.volumes ?? []).find(
      (v) => v.csi?.driver === this.o.driverName && v.csi.volumeAttributes?.secretProviderClass === spc.metadata?.name,
    );
    if (!vol) throw new Error(`failed to find secret provider class pod status volume for pod ${namespace}/${podName}`);
    const m = TARGET_PATH_RE.exec(spcps.status.targetPath);
    if (m?.[1] !== pod.metadata?.uid) {
      if (!fresh) return this.reconcile(key, true);
      throw new Error(`secret provider class pod status targetPath did not match pod UID for pod ${namespace}/${podName}`);
    }
    if (m?.[2] !== vol.name)
      throw new Error(`secret provider class pod status volume name did not match pod Volume for pod ${namespace}/${podName}`);

    const owners: OwnerReference[] = (pod.metadata?.ownerReferences ?? []).map((r) => ({
      apiVersion: r.apiVersion,
      kind: r.kind,
      name: r.name,
      uid: r.uid,
    }));
    if (owners.length === 0) {
      owners.push({
        apiVersion: `${GROUP}/v1`,
        kind: 'SecretProviderClassPodStatus',
        name: spcps.metadata.name,
        uid: spcps.metadata.uid ?? '',
      });
    }

    const errs: string[] = [];
    for (const obj of objects) {
      const secretName = (obj.secretName ?? '').trim();
      const invalid = validateSecretObject(obj);
      if (invalid) {
        errs.push(`failed to validate secret object in spc ${namespace}/${spc.metadata?.name}, err: ${invalid}`);
        continue;
      }
      let data: Record<string, Buffer>;
      try {
        data = secretData(obj, (objectName) => this.o.readFile(spcps.status.targetPath, objectName), spcps.status.targetPath);
      } catch (e) {
        const msg = `failed to get data in spc ${namespace}/${spc.metadata?.name} for secret ${secretName}, err: ${(e as Error).message}`;
        await this.o.events.emit(podRef, 'Warning', EventReason.FailedToCreateSecret, msg);
        errs.push(msg);
        continue;
      }
      try {
        const result = await this.writeSecret(namespace, secretName, obj, data, owners);
        if (result === 'created')
          await this.o.events.emit(podRef, 'Normal', EventReason.SecretSynced, `synced secret ${namespace}/${secretName}`);
        if (result === 'data-changed')
          await this.o.events.emit(
            podRef,
            'Normal',
            EventReason.SecretRotationComplete,
            `updated secret ${namespace}/${secretName} with rotated content`,
          );
      } catch (e) {
        const forbidden = apiStatus(e) === 403;
        const msg = `failed to sync secret ${namespace}/${secretName}: ${apiErrorText(e)}${forbidden ? `. ${SYNC_FORBIDDEN_WARNING} (with deploy/: bind the secretprovidersyncing-role ClusterRole)` : ''}`;
        log.warn(
          { secret: `${namespace}/${secretName}`, err: apiErrorText(e) },
          forbidden ? SYNC_FORBIDDEN_WARNING : 'failed to sync secret',
        );
        await this.o.events.emit(podRef, 'Warning', EventReason.FailedToCreateSecret, msg);
        errs.push(msg);
      } finally {
        for (const b of Object.values(data)) b.fill(0);
      }
    }
    if (errs.length > 0) throw new Error(errs.join('; '));
    return { requeueAfterMs: this.resyncMs };
  }

  /** Create, or update in place keeping other owners; returns what changed. */
  private async writeSecret(
    namespace: string,
    name: string,
    obj: SecretObject,
    data: Record<string, Buffer>,
    owners: OwnerReference[],
  ): Promise<'created' | 'data-changed' | 'meta-changed' | 'unchanged'> {
    const type = (obj.type ?? '').trim() || 'Opaque';
    const labels = { ...(obj.labels ?? {}), [MANAGED_LABEL]: 'true' };
    const annotations = { ...(obj.annotations ?? {}) };
    // The API takes the data as base64 JSON strings: V8 strings cannot be zeroed and live until the GC
    // reuses their memory, as do the request bodies and TLS buffers (docs/memory.md).
    const b64: Record<string, string> = {};
    for (const [k, v] of Object.entries(data)) b64[k] = v.toString('base64');
    const core = this.o.api.core;
    try {
      await core.createSecret(namespace, { metadata: { name, namespace, labels, annotations, ownerReferences: owners }, type, data: b64 });
      return 'created';
    } catch (e) {
      if (apiStatus(e) !== 409) throw e;
    }
    for (let attempt = 0; ; attempt++) {
      const cur = await core.getSecret(namespace, name);
      const curOwners = cur.metadata?.ownerReferences ?? [];
      const mergedOwners = [...curOwners, ...owners.filter((o) => !curOwners.some((c) => sameOwner(c, o)))];
      const dataChanged = !sameMap(cur.data ?? {}, b64);
      const metaChanged =
        mergedOwners.length !== curOwners.length ||
        !sameMap(cur.metadata?.labels ?? {}, labels) ||
        !sameMap(cur.metadata?.annotations ?? {}, annotations);
      if (!dataChanged && !metaChanged) return 'unchanged';
      const body: Secret = { ...cur, type, data: b64, metadata: { ...cur.metadata, labels, annotations, ownerReferences: mergedOwners } };
      try {
        await core.replaceSecret(namespace, name, body);
        return dataChanged ? 'data-changed' : 'meta-changed';
      } catch (e) {
        if (apiStatus(e) === 409 && attempt < 4) continue;
        throw e;
      }
    }
  }
}
