// What the built-in registrar tells kubelet, and how it judges the entry at
// its socket path: kept free of I/O so it is tested on its own.

import { join } from 'node:path';
import type { PluginInfo } from '../gen/pluginregistration/v1/api.js';

/** Kubelet's plugin type for CSI drivers. */
export const CSI_PLUGIN_TYPE = 'CSIPlugin';
/** The CSI versions kubelet may speak to us; kubelet accepts 1.x. */
export const CSI_SUPPORTED_VERSIONS: readonly string[] = ['1.0.0'];

/**
 * Kubelet may run plugins as root only: nobody else has any business
 * telling kubelet where a CSI driver listens.
 */
export const REGISTRATION_SOCKET_MODE = 0o600;

/** `<dir>/<driver name>-reg.sock`, the name node-driver-registrar uses (a swap between the two leaves no second entry). */
export function registrationSocketPath(dir: string, driverName: string): string {
  return join(dir, `${driverName}-reg.sock`);
}

/** GetInfo's answer: `endpoint` is the CSI socket as kubelet sees it (--kubelet-registration-path), not as we do. */
export function csiPluginInfo(driverName: string, endpoint: string): PluginInfo {
  return { type: CSI_PLUGIN_TYPE, name: driverName, endpoint, supportedVersions: [...CSI_SUPPORTED_VERSIONS] };
}

export interface FileId {
  readonly dev: number;
  readonly ino: number;
}

/**
 * What is at the socket path compared with the socket we bound there:
 * ours; nothing (removed: bind again); or an entry someone else put there
 * (a successor's socket, or anything else), which is theirs to keep: we
 * neither replace nor remove it, so two registrars never take the name
 * from each other in a loop.
 */
export type EntryState = 'ours' | 'gone' | 'foreign';

export function entryState(ours: FileId | null, now: (FileId & { isSocket(): boolean }) | null): EntryState {
  if (!now) return 'gone';
  return ours && now.isSocket() && now.dev === ours.dev && now.ino === ours.ino ? 'ours' : 'foreign';
}
