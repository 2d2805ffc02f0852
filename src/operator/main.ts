// The operator's loop: watches the ClusterCSIDriver and the DaemonSets it
// manages, and runs one reconcile at a time whenever either changes, after
// a failure (with backoff) and every --resync-interval.

import { ListWatch, Watch, AppsV1Api, CustomObjectsApi, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { apiErrorText, loadKubeConfig } from './kube-config.js';
import { MANAGED_BY, MANAGED_BY_LABEL, loadManifests } from './assets.js';
import type { OperatorFlags } from './flags.js';
import { Reconciler } from './reconcile.js';
import { CR_GROUP, CR_PLURAL, CR_VERSION, DRIVER_NAME } from './spec.js';
import { restartOnError } from './informer-restart.js';

export interface RunningOperator {
  stop(): Promise<void>;
}

export async function startOperator(flags: OperatorFlags, log: Logger): Promise<RunningOperator> {
  const kc = loadKubeConfig(flags.kubeconfig);
  const manifests = await loadManifests(flags.deployDir);
  const reconciler = new Reconciler(kc, manifests, flags.assets, log);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const apps = kc.makeApiClient(AppsV1Api);
  let stopped = false;
  let running: Promise<void> | null = null;
  let again = false;
  let failures = 0;
  let timer: NodeJS.Timeout | undefined;

  const schedule = (delayMs = 0): void => {
    if (stopped) return;
    clearTimeout(timer);
    timer = setTimeout(kick, delayMs);
  };
  // One reconcile at a time; a trigger during one runs another right after.
  function kick(): void {
    if (running) {
      again = true;
      return;
    }
    running = reconciler
      .reconcile()
      .then(
        () => {
          failures = 0;
          schedule(again ? 0 : flags.resyncMs);
        },
        (e: unknown) => {
          failures++;
          const backoff = Math.min(1000 * 2 ** Math.min(failures - 1, 6), flags.resyncMs);
          log.warn({ err: apiErrorText(e), retryInMs: backoff }, 'reconcile failed');
          schedule(again ? 0 : backoff);
        },
      )
      .finally(() => {
        running = null;
        again = false;
      });
  }

  const watch = new Watch(kc);
  const fieldSelector = `metadata.name=${DRIVER_NAME}`;
  const crInformer = new ListWatch<KubernetesObject>(
    `/apis/${CR_GROUP}/${CR_VERSION}/${CR_PLURAL}`,
    watch,
    async () => (await custom.listClusterCustomObject({ group: CR_GROUP, version: CR_VERSION, plural: CR_PLURAL, fieldSelector })) as never,
    false,
    undefined,
    fieldSelector,
  );
  const labelSelector = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;
  const ns = flags.assets.namespace;
  const dsInformer = new ListWatch<KubernetesObject>(
    `/apis/apps/v1/namespaces/${ns}/daemonsets`,
    watch,
    async () => (await apps.listNamespacedDaemonSet({ namespace: ns, labelSelector })) as never,
    false,
    labelSelector,
  );
  for (const inf of [crInformer, dsInformer]) {
    for (const ev of ['add', 'update', 'delete'] as const) inf.on(ev, () => schedule(100));
    // ListWatch stops on most errors; restart it, and resync to cover the gap.
    restartOnError(inf, {
      what: 'operator',
      warn: (f, m) => log.warn(f, m),
      stopped: () => stopped,
      describe: apiErrorText,
      baseDelayMs: 2000,
      onError: () => schedule(2000),
    });
  }
  await Promise.all([crInformer.start(), dsInformer.start()]);
  log.info({ namespace: ns, deployDir: flags.deployDir }, 'operator started');
  schedule(0);

  return {
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(timer);
      await Promise.all([crInformer.stop(), dsInformer.stop()]);
      await running;
    },
  };
}
