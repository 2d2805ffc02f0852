// The operator's command line. Node placement of the driver pods is set
// here rather than in the ClusterCSIDriver, whose schema is OpenShift's.

import { parseArgs } from 'node:util';
import type { V1Toleration } from '@kubernetes/client-node';
import { parseDuration } from '../cli/flags.js';
import { DEFAULT_DEPLOY_DIR, type AssetOptions } from './assets.js';

export interface OperatorFlags {
  readonly kubeconfig: string | undefined;
  readonly deployDir: string;
  readonly resyncMs: number;
  readonly logLevel: string;
  readonly assets: AssetOptions;
}

export const USAGE = `Usage of secrets-store-csi-driver-operator:
  --kubeconfig <file>          kubeconfig (default: in-cluster, else KUBECONFIG)
  --namespace <ns>             namespace of the driver's DaemonSets, ServiceAccount and Service (default secrets-store-csi-driver)
  --image <ref>                the driver image (default: deploy/'s reference)
  --node-selector <k=v,...>    added to the driver and keeper pods' node selector (kubernetes.io/os=linux stays)
  --tolerations <json>         the pods' tolerations, a JSON list (default: deploy/'s, every taint)
  --priority-class-name <name> the pods' priority class (default system-node-critical)
  --deploy-dir <dir>           the deploy/ manifests the assets are made from (default: the ones shipped with the operator)
  --resync-interval <duration> full reconcile at least this often (default 5m)
  --log-level <level>          until the ClusterCSIDriver's operatorLogLevel is read (default info)
  --help
`;

function nodeSelector(s: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (s ?? '').split(',').filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new Error(`--node-selector: ${JSON.stringify(part)} is not key=value`);
    out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return out;
}

function tolerations(s: string | undefined): V1Toleration[] | null {
  if (s === undefined) return null;
  let v: unknown;
  try {
    v = JSON.parse(s);
  } catch {
    throw new Error('--tolerations: not JSON');
  }
  if (!Array.isArray(v) || !v.every((t) => typeof t === 'object' && t !== null && !Array.isArray(t))) {
    throw new Error('--tolerations: must be a JSON list of tolerations');
  }
  return v as V1Toleration[];
}

/** Parses argv; null means --help. Throws on anything invalid. */
export function parseOperatorFlags(argv: string[]): OperatorFlags | null {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      kubeconfig: { type: 'string' },
      namespace: { type: 'string', default: 'secrets-store-csi-driver' },
      image: { type: 'string' },
      'node-selector': { type: 'string' },
      tolerations: { type: 'string' },
      'priority-class-name': { type: 'string' },
      'deploy-dir': { type: 'string', default: DEFAULT_DEPLOY_DIR },
      'resync-interval': { type: 'string', default: '5m' },
      'log-level': { type: 'string', default: 'info' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return null;
  const resyncMs = parseDuration(values['resync-interval']);
  if (resyncMs < 1000) throw new Error('--resync-interval must be at least 1s');
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(values.namespace))
    throw new Error(`--namespace: ${JSON.stringify(values.namespace)} is not a namespace name`);
  return {
    kubeconfig: values.kubeconfig,
    deployDir: values['deploy-dir'],
    resyncMs,
    logLevel: values['log-level'],
    assets: {
      namespace: values.namespace,
      image: values.image ?? null,
      placement: {
        nodeSelector: nodeSelector(values['node-selector']),
        tolerations: tolerations(values.tolerations),
        priorityClassName: values['priority-class-name'] ?? null,
      },
    },
  };
}
