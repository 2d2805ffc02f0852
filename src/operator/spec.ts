// The ClusterCSIDriver spec (operator.openshift.io/v1), read and validated as
// a whole before anything is applied: either every field is understood and
// the result is a complete DriverSettings, or the reconcile stops with the
// list of problems and changes nothing.
//
// driverConfig.driverType SecretsStore and driverConfig.secretsStore are this
// operator's extension: OpenShift's API has no settings for this driver.

import { parseDuration } from '../cli/flags.js';

export const DRIVER_NAME = 'secrets-store.csi.k8s.io';
export const CR_GROUP = 'operator.openshift.io';
export const CR_VERSION = 'v1';
export const CR_PLURAL = 'clustercsidrivers';
export const CR_KIND = 'ClusterCSIDriver';

export type ManagementState = 'Managed' | 'Unmanaged' | 'Removed';
export type DriverLogLevel = 'info' | 'debug' | 'trace';

export interface TokenRequest {
  readonly audience: string;
  readonly expirationSeconds?: number;
}

export interface DriverSettings {
  readonly logLevel: DriverLogLevel;
  readonly rotation: { readonly enabled: false } | { readonly enabled: true; readonly pollInterval: string | null };
  /** null: Unmanaged, the CSIDriver's tokenRequests are left as they are. */
  readonly tokenRequests: readonly TokenRequest[] | null;
}

export interface OperatorSpec {
  readonly managementState: ManagementState;
  readonly operatorLogLevel: DriverLogLevel;
  readonly driver: DriverSettings;
}

export type SpecResult = { readonly ok: true; readonly spec: OperatorSpec } | { readonly ok: false; readonly errors: string[] };

// OpenShift's LogLevel values; Trace and TraceAll both mean the driver's most verbose level.
const LOG_LEVELS: Record<string, DriverLogLevel> = { '': 'info', Normal: 'info', Debug: 'debug', Trace: 'trace', TraceAll: 'trace' };
const MIN_TOKEN_SECONDS = 600;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function logLevel(v: unknown, field: string, errors: string[]): DriverLogLevel {
  const level = LOG_LEVELS[v === undefined ? '' : String(v)];
  if (level) return level;
  errors.push(`${field}: ${JSON.stringify(v)} is not one of Normal, Debug, Trace, TraceAll`);
  return 'info';
}

function managementState(v: unknown, errors: string[]): ManagementState {
  // Force is OpenShift's "Managed, even when the operator would refuse"; there is nothing to force here.
  if (v === undefined || v === '' || v === 'Managed' || v === 'Force') return 'Managed';
  if (v === 'Unmanaged' || v === 'Removed') return v;
  errors.push(`spec.managementState: ${JSON.stringify(v)} is not one of Managed, Unmanaged, Removed`);
  return 'Managed';
}

function rotation(v: unknown, errors: string[]): DriverSettings['rotation'] {
  const field = 'spec.driverConfig.secretsStore.secretRotation';
  if (v === undefined) return { enabled: true, pollInterval: null };
  if (!isObj(v)) {
    errors.push(`${field}: must be an object`);
    return { enabled: true, pollInterval: null };
  }
  const type = v.type ?? '';
  if (type === 'None') {
    if (v.custom !== undefined) errors.push(`${field}.custom: must be unset when type is None`);
    return { enabled: false };
  }
  if (type === '') return { enabled: true, pollInterval: null };
  if (type !== 'Custom') {
    errors.push(`${field}.type: ${JSON.stringify(type)} is not one of None, Custom`);
    return { enabled: true, pollInterval: null };
  }
  const age = isObj(v.custom) ? v.custom.minimumRefreshAge : undefined;
  if (typeof age !== 'string') {
    errors.push(`${field}.custom.minimumRefreshAge: required when type is Custom (a duration such as 2m)`);
    return { enabled: true, pollInterval: null };
  }
  let ms: number;
  try {
    ms = parseDuration(age);
  } catch {
    errors.push(`${field}.custom.minimumRefreshAge: ${JSON.stringify(age)} is not a duration (such as 90s, 2m, 1h)`);
    return { enabled: true, pollInterval: null };
  }
  if (ms < 1000) errors.push(`${field}.custom.minimumRefreshAge: ${age} is shorter than 1s`);
  return { enabled: true, pollInterval: age };
}

function tokenRequests(v: unknown, errors: string[]): readonly TokenRequest[] | null {
  const field = 'spec.driverConfig.secretsStore.tokenRequests';
  if (v === undefined) return null;
  if (!isObj(v)) {
    errors.push(`${field}: must be an object`);
    return null;
  }
  const type = v.type ?? 'Unmanaged';
  if (type === 'Unmanaged' || type === '') {
    if (v.managed !== undefined) errors.push(`${field}.managed: must be unset unless type is Managed`);
    return null;
  }
  if (type !== 'Managed') {
    errors.push(`${field}.type: ${JSON.stringify(type)} is not one of Managed, Unmanaged`);
    return null;
  }
  const list = isObj(v.managed) ? (v.managed.audiences ?? []) : [];
  if (!Array.isArray(list)) {
    errors.push(`${field}.managed.audiences: must be a list`);
    return null;
  }
  const out: TokenRequest[] = [];
  const seen = new Set<string>();
  list.forEach((a: unknown, i) => {
    const at = `${field}.managed.audiences[${i}]`;
    if (!isObj(a) || typeof a.audience !== 'string' || a.audience === '') {
      errors.push(`${at}.audience: required, a non-empty string`);
      return;
    }
    if (seen.has(a.audience)) errors.push(`${at}.audience: ${JSON.stringify(a.audience)} is listed twice`);
    seen.add(a.audience);
    const exp = a.expirationSeconds;
    if (exp !== undefined && (typeof exp !== 'number' || !Number.isInteger(exp) || exp < MIN_TOKEN_SECONDS)) {
      errors.push(`${at}.expirationSeconds: must be an integer of at least ${MIN_TOKEN_SECONDS}`);
      return;
    }
    out.push(exp === undefined ? { audience: a.audience } : { audience: a.audience, expirationSeconds: exp });
  });
  return out;
}

/** Reads the whole spec; any problem makes the result an error listing them all. */
export function parseSpec(spec: unknown): SpecResult {
  const errors: string[] = [];
  const s = isObj(spec) ? spec : {};
  const state = managementState(s.managementState, errors);
  const driverLog = logLevel(s.logLevel, 'spec.logLevel', errors);
  const operatorLog = logLevel(s.operatorLogLevel, 'spec.operatorLogLevel', errors);
  const dc = isObj(s.driverConfig) ? s.driverConfig : {};
  const type = dc.driverType ?? '';
  if (type !== '' && type !== 'SecretsStore') {
    errors.push(`spec.driverConfig.driverType: ${JSON.stringify(type)} is not SecretsStore (or unset)`);
  }
  const ss = dc.secretsStore;
  if (ss !== undefined && !isObj(ss)) errors.push('spec.driverConfig.secretsStore: must be an object');
  if (ss !== undefined && type !== 'SecretsStore') errors.push('spec.driverConfig.secretsStore: needs driverType SecretsStore');
  const cfg = isObj(ss) ? ss : {};
  const driver: DriverSettings = {
    logLevel: driverLog,
    rotation: rotation(cfg.secretRotation, errors),
    tokenRequests: tokenRequests(cfg.tokenRequests, errors),
  };
  if (errors.length) return { ok: false, errors };
  return { ok: true, spec: { managementState: state, operatorLogLevel: operatorLog, driver } };
}
