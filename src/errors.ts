// Every error the driver returns to a gRPC caller. Each has a stable `code`
// (for tests and operators), the gRPC status the CSI caller receives, and the
// `error_type` label upstream's metrics use. Messages follow upstream's text
// where one exists, so existing alerts and e2e greps keep matching.
//
// Messages never carry secret bytes, publish secrets or tokens: only names,
// paths and provider error codes.

import { status } from '@grpc/grpc-js';

export const ErrorType = {
  FailedToMount: 'FailedToMount',
  FailedToEnsureMountPoint: 'FailedToEnsureMountPoint',
  SecretProviderClassNotFound: 'SecretProviderClassNotFound',
  GRPCProviderError: 'GRPCProviderError',
  FileWriteError: 'FileWriteError',
  FailedToRotate: 'FailedToRotate',
  /** Upstream reports an empty error_type when the provider socket is missing. */
  ProviderNotFound: '',
} as const;

export class DriverError extends Error {
  constructor(
    message: string,
    /** Stable machine-readable code, e.g. ERR_SPC_NOT_FOUND. */
    readonly code: string,
    /** gRPC status returned to the CSI caller. */
    readonly grpcCode: status,
    /** Metric label error_type (upstream's reason, or the provider's error code). */
    readonly errorType: string = ErrorType.FailedToMount,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DriverError';
  }

  /** Same error with upstream's context prefix, keeping code, status and metric label. */
  withPrefix(prefix: string): DriverError {
    return new DriverError(`${prefix}${this.message}`, this.code, this.grpcCode, this.errorType, { cause: this.cause });
  }
}

const mk =
  (code: string, grpcCode: status, errorType: string = ErrorType.FailedToMount) =>
  (message: string, cause?: unknown): DriverError =>
    new DriverError(message, code, grpcCode, errorType, { cause });

export const errors = {
  /** A required CSI request field is missing or malformed. */
  invalidArgument: mk('ERR_INVALID_ARGUMENT', status.INVALID_ARGUMENT),
  spcNotSet: mk('ERR_SPC_NOT_SET', status.INVALID_ARGUMENT),
  spcNotFound: mk('ERR_SPC_NOT_FOUND', status.NOT_FOUND, ErrorType.SecretProviderClassNotFound),
  spcUnavailable: mk('ERR_SPC_UNAVAILABLE', status.UNAVAILABLE, ErrorType.SecretProviderClassNotFound),
  spcInvalid: mk('ERR_SPC_INVALID', status.FAILED_PRECONDITION),
  /** A volume asks for read audit on a driver whose FUSE connection does not see opens. */
  auditUnavailable: mk('ERR_AUDIT_UNAVAILABLE', status.FAILED_PRECONDITION),
  invalidProvider: mk('ERR_INVALID_PROVIDER', status.INVALID_ARGUMENT, ErrorType.ProviderNotFound),
  providerNotFound: mk('ERR_PROVIDER_NOT_FOUND', status.FAILED_PRECONDITION, ErrorType.ProviderNotFound),
  /** The provider's gRPC call failed; grpcCode is chosen by the caller from the provider's status. */
  providerCall: (grpcCode: status, message: string, cause?: unknown) =>
    new DriverError(message, 'ERR_PROVIDER_CALL', grpcCode, ErrorType.GRPCProviderError, { cause }),
  /** The provider answered with MountResponse.error.code set. */
  providerErrorCode: (providerCode: string) =>
    new DriverError(
      `mount request failed with provider error code ${providerCode}`,
      'ERR_PROVIDER_ERROR_CODE',
      status.INTERNAL,
      providerCode,
    ),
  missingObjectVersions: mk('ERR_MISSING_OBJECT_VERSIONS', status.INTERNAL, ErrorType.GRPCProviderError),
  invalidResponse: mk('ERR_INVALID_PROVIDER_RESPONSE', status.INTERNAL, ErrorType.FileWriteError),
  mountFailed: mk('ERR_MOUNT_FAILED', status.INTERNAL, ErrorType.FailedToMount),
  mountPoint: mk('ERR_MOUNT_POINT', status.INTERNAL, ErrorType.FailedToEnsureMountPoint),
  unmountFailed: mk('ERR_UNMOUNT_FAILED', status.INTERNAL),
  /** Unpublish found files in the target once nothing was mounted there: not ours to delete. */
  targetNotEmpty: mk('ERR_TARGET_NOT_EMPTY', status.FAILED_PRECONDITION),
  shuttingDown: mk('ERR_SHUTTING_DOWN', status.UNAVAILABLE),
  /** A republish whose volume capability differs from the served volume's (the CSI spec's ALREADY_EXISTS). */
  incompatiblePublish: mk('ERR_INCOMPATIBLE_PUBLISH', status.ALREADY_EXISTS),
  /** A provider wrote more into its write window than a response may carry: nothing of it is served. */
  windowTooLarge: mk('ERR_WINDOW_TOO_LARGE', status.RESOURCE_EXHAUSTED, ErrorType.FileWriteError),
} as const;

export function isDriverError(e: unknown): e is DriverError {
  return e instanceof DriverError;
}

/** Upstream-compatible rendering of a gRPC status, e.g. "rpc error: code = Unavailable desc = …". */
export function grpcStatusText(code: status, details: string): string {
  // grpc-go's names: CamelCase of the enum, except OK and Canceled (one l).
  const upper = status[code] ?? 'UNKNOWN';
  const name =
    upper === 'OK'
      ? 'OK'
      : upper === 'CANCELLED'
        ? 'Canceled'
        : upper.toLowerCase().replace(/(^|_)([a-z])/g, (_m, _u: string, c: string) => c.toUpperCase());
  return `rpc error: code = ${name} desc = ${details}`;
}
