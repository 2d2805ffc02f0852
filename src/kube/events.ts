// Kubernetes Events on Pods (core/v1), so `kubectl describe pod` shows what
// the driver did: rotations and Secret syncs, successes and failures.
// Emitting is best effort: a failure is logged, never propagated.

import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { apiErrorText, type KubeApi } from './api.js';

export interface PodRef {
  readonly name: string;
  readonly namespace: string;
  readonly uid: string;
}

export const EventReason = {
  MountRotationComplete: 'MountRotationComplete',
  MountRotationFailed: 'MountRotationFailed',
  SecretSynced: 'SecretSynced',
  SecretRotationComplete: 'SecretRotationComplete',
  FailedToCreateSecret: 'FailedToCreateSecret',
  DeadSecretsMount: 'DeadSecretsMount',
  SecretsMountRepaired: 'SecretsMountRepaired',
} as const;

export class EventRecorder {
  constructor(
    private readonly api: KubeApi,
    private readonly component: string,
    private readonly host: string,
    private readonly log: Logger,
  ) {}

  async emit(pod: PodRef, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const now = new Date().toISOString();
    try {
      await this.api.core.createEvent(pod.namespace, {
        metadata: { name: `${pod.name}.${randomBytes(8).toString('hex')}`, namespace: pod.namespace },
        involvedObject: { apiVersion: 'v1', kind: 'Pod', name: pod.name, namespace: pod.namespace, uid: pod.uid },
        type,
        reason,
        message: message.slice(0, 1024),
        source: { component: this.component, host: this.host },
        reportingComponent: this.component,
        reportingInstance: this.host,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      });
    } catch (e) {
      this.log.debug({ pod: `${pod.namespace}/${pod.name}`, reason, err: apiErrorText(e) }, 'could not record event');
    }
  }
}
