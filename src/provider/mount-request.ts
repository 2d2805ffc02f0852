// Builds the provider MountRequest the way upstream's NodePublishVolume does,
// byte for byte: attributes are the SecretProviderClass parameters, then every
// volume_context key (overriding), then the service-account tokens; secrets
// are the nodePublishSecretRef data (`null` when there is none); permission is
// Go's JSON for os.FileMode(0644), i.e. "420".

import type { MountRequest, ObjectVersion } from '../gen/provider/v1alpha1/service.js';
import { goMarshalStringMap } from './go-json.js';

export const SERVICE_ACCOUNT_TOKENS_KEY = 'csi.storage.k8s.io/serviceAccount.tokens';
export const FILE_PERMISSION = '420';

/** Tokens come in req.secrets when the CSIDriver sets serviceAccountTokenInSecrets, else in volume_context. */
export function serviceAccountTokens(secrets: Readonly<Record<string, string>>, volumeContext: Readonly<Record<string, string>>): string {
  return secrets[SERVICE_ACCOUNT_TOKENS_KEY] ?? volumeContext[SERVICE_ACCOUNT_TOKENS_KEY] ?? '';
}

export function buildAttributes(
  parameters: Readonly<Record<string, string>>,
  volumeContext: Readonly<Record<string, string>>,
  tokens: string,
): Record<string, string> {
  const attrs: Record<string, string> = { ...parameters, ...volumeContext };
  if (tokens.length > 0) attrs[SERVICE_ACCOUNT_TOKENS_KEY] = tokens;
  return attrs;
}

export interface MountInputs {
  readonly attributes: Readonly<Record<string, string>>;
  /** nodePublishSecretRef data; empty means none (sent as JSON null, as upstream). */
  readonly secrets: Readonly<Record<string, string>>;
  readonly targetPath: string;
  /** Versions served now: empty on the first mount, filled on polls. */
  readonly currentObjectVersions: readonly ObjectVersion[];
}

export function buildMountRequest(i: MountInputs): MountRequest {
  return {
    attributes: goMarshalStringMap(i.attributes),
    secrets: goMarshalStringMap(Object.keys(i.secrets).length === 0 ? null : i.secrets),
    targetPath: i.targetPath,
    permission: FILE_PERMISSION,
    currentObjectVersion: [...i.currentObjectVersions]
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map((v) => ({ id: v.id, version: v.version })),
  };
}
