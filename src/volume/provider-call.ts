// One provider Mount call for a volume: its SecretProviderClass resolved,
// the attributes built, the call bounded by a deadline, timed, and its
// failure given upstream's context.

import { status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { errors, isDriverError } from '../errors.js';
import type { DriverMetrics } from '../observability/metrics.js';
import type { MountResult, ProviderClients } from '../provider/client.js';
import { buildAttributes, buildMountRequest, serviceAccountTokens } from '../provider/mount-request.js';
import { resolveSpc, type ResolvedSpc, type SpcSource } from '../spc/types.js';
import type { ObjectVersion } from './types.js';

export type ProviderCall = () => Promise<MountResult>;

export interface ProviderCallerOptions {
  readonly spcs: SpcSource;
  readonly providers: ProviderClients;
  readonly metrics: DriverMetrics;
  readonly log: Logger;
  /** Provider call timeout when the caller has no deadline (rotation polls). */
  readonly providerTimeoutMs: number;
}

/** What a call is made for: the volume, its pod, and what the provider already gave it. */
export interface CallInputs {
  readonly targetPath: string;
  readonly podNamespace: string;
  readonly podName: string;
  readonly volumeContext: Readonly<Record<string, string>>;
  readonly secrets: Readonly<Record<string, string>>;
  readonly currentObjectVersions: readonly ObjectVersion[];
  readonly deadline: Date | null;
}

export class ProviderCaller {
  constructor(private readonly o: ProviderCallerOptions) {}

  /** The SecretProviderClass `spcName` of the pod's namespace: its provider and parameters. */
  async resolve(podNamespace: string, spcName: string): Promise<ResolvedSpc> {
    return resolveSpc(await this.o.spcs.get(podNamespace, spcName), podNamespace, spcName);
  }

  /** The call for `spc`, its attributes built now (tokens included) from `i`. */
  prepare(spc: ResolvedSpc, i: CallInputs): ProviderCall {
    const attributes = buildAttributes(spc.parameters, i.volumeContext, serviceAccountTokens(i.secrets, i.volumeContext));
    return () => this.call(spc.provider, attributes, i);
  }

  private async call(provider: string, attributes: Record<string, string>, i: CallInputs): Promise<MountResult> {
    const req = buildMountRequest({
      attributes,
      secrets: i.secrets,
      targetPath: i.targetPath,
      currentObjectVersions: i.currentObjectVersions,
    });
    const limit = new Date(Date.now() + this.o.providerTimeoutMs);
    const started = performance.now();
    try {
      const res = await this.o.providers.mount(provider, req, i.deadline && i.deadline < limit ? i.deadline : limit);
      this.o.metrics.providerMount(provider, true, (performance.now() - started) / 1000);
      if (res.responseBytes > 1024 * 1024) {
        this.o.log.info({ provider, size: res.responseBytes }, 'proto above 1MiB, secret sync may fail');
      }
      return res;
    } catch (e) {
      this.o.metrics.providerMount(provider, false, (performance.now() - started) / 1000);
      const err = isDriverError(e) ? e : errors.providerCall(status.UNKNOWN, (e as Error).message, e);
      throw err.withPrefix(`failed to mount secrets store objects for pod ${i.podNamespace}/${i.podName}, err: `);
    }
  }
}
