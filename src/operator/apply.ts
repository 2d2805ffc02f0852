// Writes managed objects only when they differ from what is live, so that a
// resync or an operator restart with nothing changed writes nothing. An
// object is unchanged when every field the operator sets has the same value
// live (the server's defaults and other writers' extra fields are ignored)
// and its desired-hash annotation matches, which catches fields the
// operator stopped setting. Changes go through server-side apply with the
// operator's field manager, forced: the operator owns the fields it sets.

import { createHash } from 'node:crypto';
import { KubernetesObjectApi, PatchStrategy, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { apiStatus } from './kube-config.js';
import { HASH_ANNOTATION } from './assets.js';

export const FIELD_MANAGER = 'secrets-store-csi-driver-operator';

export type ApplyResult = 'created' | 'updated' | 'unchanged' | 'exists';

/** True when every value set in `want` is equal in `have` (arrays: same length, element by element; [] matches absent). */
export function contains(want: unknown, have: unknown): boolean {
  if (want === undefined || want === null) return true;
  if (Array.isArray(want)) {
    // The server drops empty lists it does not store (omitempty).
    if (want.length === 0 && have === undefined) return true;
    return Array.isArray(have) && have.length === want.length && want.every((w, i) => contains(w, have[i]));
  }
  if (typeof want === 'object') {
    if (typeof have !== 'object' || have === null || Array.isArray(have)) return false;
    const h = have as Record<string, unknown>;
    return Object.entries(want as Record<string, unknown>).every(([k, v]) => contains(v, h[k]));
  }
  return want === have;
}

export function desiredHash(o: KubernetesObject): string {
  return createHash('sha256').update(JSON.stringify(o)).digest('hex').slice(0, 16);
}

export const describe = (o: KubernetesObject): string =>
  `${o.kind} ${o.metadata?.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata?.name}`;

export class Applier {
  private readonly api: KubernetesObjectApi;
  constructor(
    kc: KubeConfig,
    private readonly log: Logger,
  ) {
    this.api = KubernetesObjectApi.makeApiClient(kc);
  }

  async read(o: KubernetesObject): Promise<KubernetesObject | null> {
    try {
      return await this.api.read({
        apiVersion: o.apiVersion!,
        kind: o.kind!,
        metadata: { name: o.metadata!.name!, namespace: o.metadata?.namespace ?? '' },
      });
    } catch (e) {
      if (apiStatus(e) === 404) return null;
      throw e;
    }
  }

  /** Creates the object if it is missing; never touches an existing one. */
  async createIfMissing(o: KubernetesObject): Promise<ApplyResult> {
    if (await this.read(o)) return 'exists';
    try {
      await this.api.create(o, undefined, undefined, FIELD_MANAGER);
      return 'created';
    } catch (e) {
      if (apiStatus(e) === 409) return 'exists';
      throw e;
    }
  }

  /**
   * Brings the object to `desired` unless it already is. `adjust` may copy
   * fields the operator leaves alone from the live object into `desired`.
   */
  async ensure(desired: KubernetesObject, adjust?: (desired: KubernetesObject, live: KubernetesObject) => void): Promise<ApplyResult> {
    const live = await this.read(desired);
    const want = structuredClone(desired);
    if (live && adjust) adjust(want, live);
    const hash = desiredHash(want);
    want.metadata = { ...want.metadata, annotations: { ...want.metadata?.annotations, [HASH_ANNOTATION]: hash } };
    if (live) {
      const sameHash = live.metadata?.annotations?.[HASH_ANNOTATION] === hash;
      const sameFields = contains(withoutMeta(want), withoutMeta(live));
      if (sameHash && sameFields) return 'unchanged';
      this.log.debug({ object: describe(want), sameHash, sameFields }, 'differs from the desired state');
    }
    await this.api.patch(want, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
    return live ? 'updated' : 'created';
  }

  /** Deletes the object; false when it was already gone. */
  async remove(o: KubernetesObject): Promise<boolean> {
    try {
      await this.api.delete(
        { apiVersion: o.apiVersion!, kind: o.kind!, metadata: { name: o.metadata!.name!, namespace: o.metadata?.namespace ?? '' } },
        undefined,
        undefined,
        undefined,
        undefined,
        'Background',
      );
      return true;
    } catch (e) {
      if (apiStatus(e) === 404) return false;
      throw e;
    }
  }
}

// metadata is compared through the hash (labels, annotations, owner): the
// live copy carries server-set fields the operator never writes.
function withoutMeta(o: KubernetesObject): Record<string, unknown> {
  const { metadata, ...rest } = o as KubernetesObject & Record<string, unknown>;
  return { ...rest, metadata: { labels: metadata?.labels, ownerReferences: metadata?.ownerReferences } };
}
