// One reconcile of the ClusterCSIDriver named secrets-store.csi.k8s.io:
// finalizer, spec validation (all or nothing), then by managementState
// apply the assets (Managed), leave them alone (Unmanaged) or uninstall
// (Removed, and deletion of the object), and finally the status.

import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
  type V1DaemonSet,
  type V1OwnerReference,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { apiErrorText, apiStatus } from './kube-config.js';
import { Applier, describe } from './apply.js';
import { renderAssets, renderCrds, type AssetOptions, type Manifests } from './assets.js';
import { OperatorEvents } from './events.js';
import { CR_GROUP, CR_KIND, CR_PLURAL, CR_VERSION, DRIVER_NAME, parseSpec, type DriverSettings } from './spec.js';
import {
  daemonSetConditions,
  degraded,
  generations,
  nextStatus,
  readyReplicas,
  sameStatus,
  volumesInUse,
  Cond,
  type Condition,
  type OperatorStatus,
} from './status.js';
import { podsUsingDriver, removeAssets } from './uninstall.js';

export const FINALIZER = 'operator.secrets-store.csi.k8s.io/uninstall';

interface ClusterCSIDriver extends KubernetesObject {
  spec?: unknown;
  status?: OperatorStatus;
}

// Rendering for removal needs names only; these settings do not matter then.
const ANY_SETTINGS: DriverSettings = { logLevel: 'info', rotation: { enabled: true, pollInterval: null }, tokenRequests: null };
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export class Reconciler {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly apps: AppsV1Api;
  private readonly applier: Applier;
  private readonly events: OperatorEvents;

  constructor(
    kc: KubeConfig,
    private readonly manifests: Manifests,
    private readonly opts: AssetOptions,
    private readonly log: Logger,
  ) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.core = kc.makeApiClient(CoreV1Api);
    this.apps = kc.makeApiClient(AppsV1Api);
    this.applier = new Applier(kc, log);
    this.events = new OperatorEvents(this.core, log);
  }

  private async get(): Promise<ClusterCSIDriver | null> {
    try {
      return (await this.custom.getClusterCustomObject({
        group: CR_GROUP,
        version: CR_VERSION,
        plural: CR_PLURAL,
        name: DRIVER_NAME,
      })) as ClusterCSIDriver;
    } catch (e) {
      if (apiStatus(e) === 404) return null;
      throw e;
    }
  }

  private async setFinalizers(cr: ClusterCSIDriver, finalizers: string[]): Promise<void> {
    // resourceVersion makes this a compare-and-swap: a concurrent change fails it (409) and the next reconcile retries.
    await this.custom.patchClusterCustomObject(
      {
        group: CR_GROUP,
        version: CR_VERSION,
        plural: CR_PLURAL,
        name: DRIVER_NAME,
        body: { metadata: { finalizers, resourceVersion: cr.metadata!.resourceVersion } },
      },
      mergePatch,
    );
  }

  private owner(cr: ClusterCSIDriver): V1OwnerReference {
    return { apiVersion: `${CR_GROUP}/${CR_VERSION}`, kind: CR_KIND, name: DRIVER_NAME, uid: cr.metadata!.uid!, controller: true };
  }

  private ref(cr: ClusterCSIDriver): { name: string; uid: string } {
    return { name: DRIVER_NAME, uid: cr.metadata!.uid! };
  }

  private async daemonSets(assets: readonly KubernetesObject[]): Promise<Array<V1DaemonSet | null>> {
    return Promise.all(
      assets
        .filter((a) => a.kind === 'DaemonSet')
        .map(async (a) => {
          try {
            return await this.apps.readNamespacedDaemonSet({ name: a.metadata!.name!, namespace: a.metadata!.namespace! });
          } catch (e) {
            if (apiStatus(e) === 404) return null;
            throw e;
          }
        }),
    );
  }

  private async writeStatus(cr: ClusterCSIDriver, fields: Omit<OperatorStatus, 'conditions'>, conditions: Condition[]): Promise<boolean> {
    const next = nextStatus(cr.status, { ...fields, observedGeneration: cr.metadata!.generation }, conditions, new Date());
    if (sameStatus(cr.status, next)) return false;
    await this.custom.patchClusterCustomObjectStatus(
      { group: CR_GROUP, version: CR_VERSION, plural: CR_PLURAL, name: DRIVER_NAME, body: { status: next } },
      mergePatch,
    );
    return true;
  }

  /** Reports pods still using the driver, then deletes every managed object. */
  private async uninstall(cr: ClusterCSIDriver): Promise<Condition> {
    const pods = await podsUsingDriver(this.core);
    const inUse = volumesInUse(pods);
    const before = cr.status?.conditions?.find((c) => c.type === Cond.VolumesInUse);
    if (pods.length && before?.message !== inUse.message) {
      this.log.warn({ pods }, 'removing the driver while pods still mount its volumes');
      await this.events.emit(this.ref(cr), 'Warning', 'VolumesInUse', inUse.message);
    }
    const deleted = await removeAssets(this.applier, renderAssets(this.manifests, this.opts, ANY_SETTINGS, this.owner(cr)));
    if (deleted.length) {
      this.log.info({ deleted }, 'driver removed');
      await this.events.emit(this.ref(cr), 'Normal', 'DriverRemoved', `deleted ${deleted.join(', ')}`);
    }
    return inUse;
  }

  private async apply(cr: ClusterCSIDriver, assets: readonly KubernetesObject[], driver: DriverSettings): Promise<void> {
    const changed: string[] = [];
    for (const crd of renderCrds(this.manifests)) {
      if ((await this.applier.createIfMissing(crd)) === 'created') changed.push(`created ${describe(crd)}`);
    }
    for (const a of assets) {
      // tokenRequests Unmanaged: whatever the CSIDriver has live stays.
      const keepTokens =
        a.kind === 'CSIDriver' && driver.tokenRequests === null
          ? (want: KubernetesObject, live: KubernetesObject) => {
              // (An empty list is stored as absent: [] keeps the desired hash stable.)
              const current = (live as { spec?: { tokenRequests?: unknown } }).spec?.tokenRequests ?? [];
              (want as { spec: { tokenRequests?: unknown } }).spec.tokenRequests = current;
            }
          : undefined;
      const r = await this.applier.ensure(a, keepTokens);
      if (r === 'created' || r === 'updated') changed.push(`${r} ${describe(a)}`);
    }
    if (changed.length) {
      this.log.info({ changed }, 'driver assets applied');
      await this.events.emit(this.ref(cr), 'Normal', 'DriverAssetsApplied', changed.join(', '));
    }
  }

  async reconcile(): Promise<void> {
    const cr = await this.get();
    if (!cr) {
      this.log.debug({}, `no ClusterCSIDriver ${DRIVER_NAME}`);
      return;
    }
    const finalizers = cr.metadata?.finalizers ?? [];
    if (cr.metadata?.deletionTimestamp) {
      if (!finalizers.includes(FINALIZER)) return;
      await this.uninstall(cr);
      await this.setFinalizers(
        cr,
        finalizers.filter((f) => f !== FINALIZER),
      );
      this.log.info({}, 'ClusterCSIDriver deleted: driver removed, finalizer dropped');
      return;
    }
    const parsed = parseSpec(cr.spec);
    if (!parsed.ok) {
      const msg = `invalid spec, nothing applied: ${parsed.errors.join('; ')}`;
      if (await this.writeStatus(cr, {}, [degraded(msg, 'InvalidSpec')]))
        await this.events.emit(this.ref(cr), 'Warning', 'InvalidSpec', msg);
      return;
    }
    const { spec } = parsed;
    this.log.level = spec.operatorLogLevel;
    if (spec.managementState !== 'Removed' && !finalizers.includes(FINALIZER)) {
      await this.setFinalizers(cr, [...finalizers, FINALIZER]);
      return; // the update triggers the next reconcile, with the new resourceVersion
    }
    const assets = renderAssets(this.manifests, this.opts, spec.driver, this.owner(cr));
    if (spec.managementState === 'Removed') {
      const inUse = await this.uninstall(cr);
      // Nothing is left to clean up, so nothing needs to hold up a deletion.
      // Before the status write, which would change the resourceVersion this compares.
      if (finalizers.includes(FINALIZER))
        await this.setFinalizers(
          cr,
          finalizers.filter((f) => f !== FINALIZER),
        );
      await this.writeStatus(cr, { readyReplicas: 0, generations: [] }, [
        { type: Cond.Available, status: 'False', reason: 'Removed', message: 'managementState is Removed' },
        { type: Cond.Progressing, status: 'False', reason: 'Removed', message: 'managementState is Removed' },
        degraded(null),
        inUse,
      ]);
      return;
    }
    let failure: string | null = null;
    if (spec.managementState === 'Managed') {
      try {
        await this.apply(cr, assets, spec.driver);
      } catch (e) {
        failure = `applying the driver's objects: ${apiErrorText(e)}`;
        this.log.error({ err: failure }, 'reconcile failed');
      }
    }
    const sets = await this.daemonSets(assets);
    await this.writeStatus(cr, { readyReplicas: readyReplicas(sets), generations: generations(sets) }, [
      ...daemonSetConditions(sets),
      degraded(failure),
    ]);
    if (failure) throw new Error(failure);
  }
}
