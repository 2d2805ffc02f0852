// The NodePublishVolume volume-context keys the driver reads (set by kubelet
// and by the volume's attributes), and upstream's csi-sanity hooks.

export const POD_NAME = 'csi.storage.k8s.io/pod.name';
export const POD_NAMESPACE = 'csi.storage.k8s.io/pod.namespace';
export const POD_UID = 'csi.storage.k8s.io/pod.uid';
export const SPC_ATTRIBUTE = 'secretProviderClass';
/** Only csi-sanity sets it: the provider then comes from here, not from a SecretProviderClass. */
export const PROVIDER_NAME_ATTRIBUTE = 'providerName';
/** csi-sanity hooks, as upstream: provider name and target path that skip the provider. */
export const MOCK_PROVIDER = 'mock_provider';
export const MOCK_TARGET_PATH = '/tmp/csi/mount';
/**
 * Read audit (docs/audit.md): "true" in the volume's attributes or in its
 * SecretProviderClass's spec.parameters logs every open of its files.
 */
export const AUDIT_READS_ATTRIBUTE = 'secrets-store.csi.x-k8s.io/audit-reads';
