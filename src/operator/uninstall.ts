// Removing the driver: first the pods that still mount its inline volumes
// are found and reported (they keep their mounts, but without the driver
// kubelet can neither refresh nor unmount them), then every object the
// operator created is deleted. The CRDs, and so users' SecretProviderClasses,
// stay.

import type { CoreV1Api, KubernetesObject } from '@kubernetes/client-node';
import type { Applier } from './apply.js';
import { DRIVER_NAME } from './spec.js';

/** `namespace/name` of every pod with an inline CSI volume of this driver. */
export async function podsUsingDriver(core: CoreV1Api): Promise<string[]> {
  const out: string[] = [];
  let _continue: string | undefined;
  do {
    const page = await core.listPodForAllNamespaces({ limit: 500, _continue });
    for (const p of page.items) {
      if (p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') continue;
      if ((p.spec?.volumes ?? []).some((v) => v.csi?.driver === DRIVER_NAME)) out.push(`${p.metadata!.namespace}/${p.metadata!.name}`);
    }
    _continue = page.metadata?._continue || undefined;
  } while (_continue);
  return out.sort();
}

/** Deletes the managed objects, DaemonSets first (they use the rest); returns what was deleted. */
export async function removeAssets(applier: Applier, assets: readonly KubernetesObject[]): Promise<string[]> {
  const order = [...assets].sort((a, b) => Number(b.kind === 'DaemonSet') - Number(a.kind === 'DaemonSet'));
  const deleted: string[] = [];
  for (const o of order) {
    if (await applier.remove(o)) deleted.push(`${o.kind} ${o.metadata!.name}`);
  }
  return deleted;
}
