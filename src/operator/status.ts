// The ClusterCSIDriver's status, as OpenShift's CSI driver operators report
// it: <Prefix>Available / Progressing / Degraded conditions, observedGeneration,
// readyReplicas and the generations of the DaemonSets, computed from the
// DaemonSets' own status. Written only when something in it changed, keeping
// each condition's lastTransitionTime while its status stays the same.

import type { V1DaemonSet } from '@kubernetes/client-node';

export const CONDITION_PREFIX = 'SecretsStoreDriver';
export const Cond = {
  Available: `${CONDITION_PREFIX}Available`,
  Progressing: `${CONDITION_PREFIX}Progressing`,
  Degraded: `${CONDITION_PREFIX}Degraded`,
  /** Pods still mounting the driver's volumes when it was removed. */
  VolumesInUse: `${CONDITION_PREFIX}VolumesInUse`,
} as const;

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime?: string;
}

export interface GenerationStatus {
  group: string;
  resource: string;
  namespace: string;
  name: string;
  lastGeneration: number;
}

export interface OperatorStatus {
  observedGeneration?: number;
  readyReplicas?: number;
  conditions?: Condition[];
  generations?: GenerationStatus[];
}

const cond = (type: string, ok: boolean, reason: string, message: string): Condition => ({
  type,
  status: ok ? 'True' : 'False',
  reason,
  message,
});

/** Available/Progressing from the DaemonSets (null: one is missing). */
export function daemonSetConditions(sets: ReadonlyArray<V1DaemonSet | null>): Condition[] {
  if (sets.some((d) => !d)) {
    return [
      cond(Cond.Available, false, 'DaemonSetMissing', 'a driver DaemonSet does not exist yet'),
      cond(Cond.Progressing, true, 'DaemonSetMissing', 'creating the driver DaemonSets'),
    ];
  }
  const notObserved: string[] = [];
  const unavailable: string[] = [];
  const rolling: string[] = [];
  for (const d of sets as V1DaemonSet[]) {
    const name = d.metadata!.name!;
    const st = d.status;
    if ((st?.observedGeneration ?? 0) < (d.metadata!.generation ?? 0)) notObserved.push(name);
    else {
      if ((st?.numberUnavailable ?? 0) > 0) unavailable.push(`${name} (${st!.numberUnavailable} of ${st!.desiredNumberScheduled} pods)`);
      if ((st?.updatedNumberScheduled ?? 0) < (st?.desiredNumberScheduled ?? 0)) rolling.push(name);
    }
  }
  const available =
    notObserved.length || unavailable.length
      ? cond(
          Cond.Available,
          false,
          notObserved.length ? 'NotObserved' : 'PodsUnavailable',
          [...notObserved.map((n) => `${n}: change not yet observed`), ...unavailable.map((u) => `${u} unavailable`)].join('; '),
        )
      : cond(Cond.Available, true, 'AsExpected', 'every driver DaemonSet has all its pods available');
  const busy = [...notObserved, ...rolling];
  const progressing = busy.length
    ? cond(Cond.Progressing, true, 'RollingOut', `rolling out: ${busy.join(', ')}`)
    : cond(Cond.Progressing, false, 'AsExpected', 'every driver DaemonSet is up to date');
  return [available, progressing];
}

export const degraded = (error: string | null, reason = 'ReconcileFailed'): Condition =>
  error ? cond(Cond.Degraded, true, reason, error) : cond(Cond.Degraded, false, 'AsExpected', 'the last reconcile succeeded');

export function volumesInUse(pods: readonly string[]): Condition {
  return pods.length
    ? cond(
        Cond.VolumesInUse,
        true,
        'PodsStillMounting',
        `pods still using ${'secrets-store.csi.k8s.io'} volumes when the driver was removed: ${pods.join(', ')}`,
      )
    : cond(Cond.VolumesInUse, false, 'NoPods', 'no pod mounts a volume of the driver');
}

export function generations(sets: ReadonlyArray<V1DaemonSet | null>): GenerationStatus[] {
  return sets
    .filter((d): d is V1DaemonSet => !!d)
    .map((d) => ({
      group: 'apps',
      resource: 'daemonsets',
      namespace: d.metadata!.namespace!,
      name: d.metadata!.name!,
      lastGeneration: d.metadata!.generation ?? 0,
    }));
}

export const readyReplicas = (sets: ReadonlyArray<V1DaemonSet | null>): number =>
  sets.reduce((n, d) => n + (d?.status?.numberReady ?? 0), 0);

/**
 * The next status: `updates` replace conditions of the same type (other
 * types are kept), lastTransitionTime carried over while status is unchanged.
 */
export function nextStatus(
  old: OperatorStatus | undefined,
  fields: Omit<OperatorStatus, 'conditions'>,
  updates: Condition[],
  now: Date,
): OperatorStatus {
  const prev = new Map((old?.conditions ?? []).map((c) => [c.type, c]));
  const conditions = new Map(prev);
  for (const c of updates) {
    const p = prev.get(c.type);
    conditions.set(c.type, {
      ...c,
      lastTransitionTime: p && p.status === c.status && p.lastTransitionTime ? p.lastTransitionTime : now.toISOString(),
    });
  }
  return { ...old, ...fields, conditions: [...conditions.values()].sort((a, b) => a.type.localeCompare(b.type)) };
}

/** Same content, ignoring key order. */
export function sameStatus(a: OperatorStatus | undefined, b: OperatorStatus): boolean {
  const norm = (s: OperatorStatus | undefined): string =>
    JSON.stringify(s ?? {}, (_k, v: unknown) =>
      v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => x.localeCompare(y))) : v,
    );
  return norm(a) === norm(b);
}
