// SecretProviderClass (secrets-store.csi.x-k8s.io v1 and v1alpha1, same spec)
// and the lookup interface both sources implement.

import { errors } from '../errors.js';

export const SPC_GROUP = 'secrets-store.csi.x-k8s.io';
export const SPC_PLURAL = 'secretproviderclasses';
export const SPC_KIND = 'SecretProviderClass';

export interface SecretObjectData {
  objectName?: string;
  key?: string;
}

export interface SecretObject {
  secretName?: string;
  type?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  data?: SecretObjectData[];
}

export interface SecretProviderClass {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
  spec?: {
    provider?: string;
    parameters?: Record<string, string> | null;
    secretObjects?: SecretObject[];
  };
}

export interface SpcSource {
  /** Resolves the SPC `name` in `namespace`; throws a DriverError with upstream's message when absent. */
  get(namespace: string, name: string): Promise<SecretProviderClass>;
  close(): Promise<void>;
}

/** Upstream's not-found text, as the Kubernetes API would phrase it. */
export function spcNotFound(namespace: string, name: string): Error {
  return errors.spcNotFound(
    `failed to get secretproviderclass ${namespace}/${name}, error: ${SPC_PLURAL}.${SPC_GROUP} ${JSON.stringify(name)} not found`,
  );
}

export interface ResolvedSpc {
  readonly provider: string;
  readonly parameters: Record<string, string>;
}

/** Upstream's getProviderFromSPC + getParametersFromSPC. */
export function resolveSpc(spc: SecretProviderClass, namespace: string, name: string): ResolvedSpc {
  const provider = spc.spec?.provider ?? '';
  if (provider === '') throw errors.spcInvalid(`provider not set in ${namespace}/${name}`);
  const parameters = spc.spec?.parameters ?? {};
  if (Object.keys(parameters).length === 0) throw errors.spcInvalid(`parameters not set in ${namespace}/${name}`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(parameters)) out[k] = String(v);
  return { provider, parameters: out };
}
