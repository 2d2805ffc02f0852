// The objects the operator manages, generated from the deploy/ manifests
// that ship with it (the same files `kubectl apply -f deploy/` uses), so the
// operator and deploy/ cannot drift: each object is read from there and
// patched for the namespace, the image, the node placement and the
// ClusterCSIDriver's settings. Only the metrics Service is built here,
// from the DaemonSet's own `metrics` port.

import { readFile, readdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KubernetesObject, V1DaemonSet, V1OwnerReference, V1Toleration } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import type { DriverSettings } from './spec.js';

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'secrets-store-csi-driver-operator';
export const HASH_ANNOTATION = 'operator.secrets-store.csi.k8s.io/desired-hash';
export const METRICS_SERVICE = 'csi-secrets-store-metrics';

/** deploy/ next to dist/ (the package and the image both ship it there). */
export const DEFAULT_DEPLOY_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../deploy');

// The image placeholder deploy/ uses for the driver and keeper containers.
const DRIVER_IMAGE_PREFIX = 'ghcr.io/example/secrets-store-csi-driver-ts';

// The deploy/ files the operator manages. rbac-secretprovidersyncing.yaml is
// left out on purpose: it grants writing every Secret (see docs/install.md).
const FILES = ['rbac.yaml', 'csidriver.yaml', 'secrets-store-csi-driver.yaml', 'keeper.yaml'];

export interface Placement {
  readonly nodeSelector: Readonly<Record<string, string>>;
  /** null: keep deploy/'s tolerations. */
  readonly tolerations: readonly V1Toleration[] | null;
  /** null: keep deploy/'s priority class. */
  readonly priorityClassName: string | null;
}

export interface AssetOptions {
  readonly namespace: string;
  /** null: keep deploy/'s image reference. */
  readonly image: string | null;
  readonly placement: Placement;
}

export interface Manifests {
  /** Created where missing, never updated or deleted (they hold users' objects). */
  readonly crds: readonly KubernetesObject[];
  readonly objects: readonly KubernetesObject[];
}

async function parseFile(file: string): Promise<KubernetesObject[]> {
  return parseAllDocuments(await readFile(file, 'utf8'))
    .map((d) => d.toJS() as KubernetesObject | null)
    .filter((o): o is KubernetesObject => !!o?.kind);
}

export async function loadManifests(dir: string): Promise<Manifests> {
  const crdDir = join(dir, 'crds');
  const crdFiles = (await readdir(crdDir)).filter((f) => /\.ya?ml$/.test(f)).sort();
  const crds = (await Promise.all(crdFiles.map((f) => parseFile(join(crdDir, f))))).flat();
  const objects = (await Promise.all(FILES.map((f) => parseFile(join(dir, f))))).flat();
  if (!objects.some((o) => o.kind === 'CSIDriver') || objects.filter((o) => o.kind === 'DaemonSet').length !== 2) {
    throw new Error(`${dir} does not hold the driver's manifests (a CSIDriver and two DaemonSets)`);
  }
  return { crds, objects };
}

const clone = <T>(o: T): T => structuredClone(o);

function setArg(args: string[], name: string, value: string): void {
  const i = args.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (i >= 0) args[i] = `--${name}=${value}`;
  else args.push(`--${name}=${value}`);
}

function patchDaemonSet(ds: V1DaemonSet, o: AssetOptions, driver: DriverSettings): void {
  const pod = ds.spec!.template.spec!;
  if (o.image) {
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      if (c.image?.startsWith(`${DRIVER_IMAGE_PREFIX}:`) || c.image?.startsWith(`${DRIVER_IMAGE_PREFIX}@`)) c.image = o.image;
    }
  }
  pod.nodeSelector = { ...pod.nodeSelector, ...o.placement.nodeSelector };
  if (o.placement.tolerations) pod.tolerations = clone([...o.placement.tolerations]);
  if (o.placement.priorityClassName !== null) pod.priorityClassName = o.placement.priorityClassName;
  const main = pod.containers.find((c) => c.name === 'secrets-store');
  if (!main) return; // the keeper: no driver settings
  const args = main.args ?? [];
  setArg(args, 'log-level', driver.logLevel);
  setArg(args, 'enable-secret-rotation', String(driver.rotation.enabled));
  if (driver.rotation.enabled && driver.rotation.pollInterval) setArg(args, 'rotation-poll-interval', driver.rotation.pollInterval);
  main.args = args;
}

function metricsService(ds: V1DaemonSet, namespace: string): KubernetesObject | null {
  const port = ds.spec!.template.spec!.containers.flatMap((c) => c.ports ?? []).find((p) => p.name === 'metrics');
  if (!port) return null;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: METRICS_SERVICE, namespace },
    spec: {
      selector: { ...ds.spec!.selector.matchLabels },
      ports: [{ name: 'metrics', port: port.containerPort, targetPort: 'metrics', protocol: 'TCP' }],
    },
  } as KubernetesObject;
}

const isNamespaced = (o: KubernetesObject): boolean =>
  !['ClusterRole', 'ClusterRoleBinding', 'CSIDriver', 'CustomResourceDefinition'].includes(o.kind!);

export function withOwnership(o: KubernetesObject, owner: V1OwnerReference | null): KubernetesObject {
  const out = clone(o);
  out.metadata = { ...out.metadata, labels: { ...out.metadata?.labels, [MANAGED_BY_LABEL]: MANAGED_BY } };
  if (owner) out.metadata.ownerReferences = [owner];
  return out;
}

/** The managed objects for these settings, each labeled and owned by the ClusterCSIDriver. */
export function renderAssets(m: Manifests, o: AssetOptions, driver: DriverSettings, owner: V1OwnerReference): KubernetesObject[] {
  const out: KubernetesObject[] = [];
  for (const src of m.objects) {
    const obj = clone(src);
    if (isNamespaced(obj)) obj.metadata = { ...obj.metadata, namespace: o.namespace };
    if (obj.kind === 'ClusterRoleBinding' || obj.kind === 'RoleBinding') {
      for (const s of (obj as { subjects?: Array<{ kind: string; namespace?: string }> }).subjects ?? []) {
        if (s.kind === 'ServiceAccount') s.namespace = o.namespace;
      }
    }
    if (obj.kind === 'DaemonSet') patchDaemonSet(obj as V1DaemonSet, o, driver);
    if (obj.kind === 'CSIDriver') {
      // requiresRepublish stays true whatever the rotation setting: kubelet's
      // republish is also what hands the driver fresh service account tokens.
      const spec = (obj as { spec: { tokenRequests?: TokenRequestSpec[] } }).spec;
      if (driver.tokenRequests) spec.tokenRequests = driver.tokenRequests.map((t) => ({ ...t }));
    }
    out.push(withOwnership(obj, owner));
  }
  const ds = out.find(
    (x) => x.kind === 'DaemonSet' && (x as V1DaemonSet).spec!.template.spec!.containers.some((c) => c.name === 'secrets-store'),
  );
  const svc = ds && metricsService(ds as V1DaemonSet, o.namespace);
  if (svc) out.push(withOwnership(svc, owner));
  return out;
}

type TokenRequestSpec = { audience: string; expirationSeconds?: number };

/** The CRDs, labeled, without an owner: they outlive the operator's objects. */
export function renderCrds(m: Manifests): KubernetesObject[] {
  return m.crds.map((c) => withOwnership(c, null));
}
