// Events on the ClusterCSIDriver about what the operator changed. The object
// is cluster-scoped, so its events live in the `default` namespace, where
// `kubectl describe clustercsidriver` looks for them. Best effort: a failure
// is logged, never propagated.

import { randomBytes } from 'node:crypto';
import type { CoreV1Api } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { apiErrorText } from './kube-config.js';
import { CR_GROUP, CR_KIND, CR_VERSION } from './spec.js';

export interface OwnerRef {
  readonly name: string;
  readonly uid: string;
}

export class OperatorEvents {
  constructor(
    private readonly core: CoreV1Api,
    private readonly log: Logger,
  ) {}

  async emit(cr: OwnerRef, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const now = new Date();
    const component = 'secrets-store-csi-driver-operator';
    try {
      await this.core.createNamespacedEvent({
        namespace: 'default',
        body: {
          metadata: { name: `${cr.name}.${randomBytes(8).toString('hex')}`, namespace: 'default' },
          involvedObject: { apiVersion: `${CR_GROUP}/${CR_VERSION}`, kind: CR_KIND, name: cr.name, uid: cr.uid },
          type,
          reason,
          message: message.slice(0, 1024),
          source: { component },
          reportingComponent: component,
          reportingInstance: component,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
    } catch (e) {
      this.log.warn({ reason, err: apiErrorText(e) }, 'could not record event');
    }
  }
}
