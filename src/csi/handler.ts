// Adapts async handlers to grpc-js unary callbacks: DriverErrors become their
// gRPC status and message; anything else is Internal. Nothing of the request
// is echoed back, so secrets in a request can never leak through an error.

import { status, type sendUnaryData, type ServerUnaryCall, type ServiceError, Metadata } from '@grpc/grpc-js';
import { isDriverError } from '../errors.js';

export function toServiceError(e: unknown): Partial<ServiceError> {
  if (isDriverError(e)) return { code: e.grpcCode, details: e.message, metadata: new Metadata() };
  return { code: status.INTERNAL, details: (e as Error)?.message ?? String(e), metadata: new Metadata() };
}

export function unary<Req, Res>(fn: (req: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>) {
  return (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>): void => {
    fn(call.request, call).then(
      (res) => cb(null, res),
      (e: unknown) => cb(toServiceError(e)),
    );
  };
}

/** The caller's deadline, or null when it set none. */
export function callDeadline(call: ServerUnaryCall<unknown, unknown>): Date | null {
  const d = call.getDeadline();
  if (d instanceof Date) return d;
  return Number.isFinite(d) ? new Date(d) : null;
}
