// pino JSON logs on stdout. Secret material never reaches a log call: callers
// pass names, paths and codes only. As a second line of defence the usual
// places a secret could hide are redacted if a caller ever passes them.

import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export const REDACT_PATHS = [
  'secrets',
  '*.secrets',
  'attributes',
  '*.attributes',
  'contents',
  '*.contents',
  'token',
  '*.token',
  'volumeContext["csi.storage.k8s.io/serviceAccount.tokens"]',
  '*.volumeContext["csi.storage.k8s.io/serviceAccount.tokens"]',
];

export function createLogger(level: LevelWithSilent = 'info', dest: pino.DestinationStream | undefined = undefined): Logger {
  const opts: pino.LoggerOptions = {
    level,
    base: { component: 'secrets-store-csi-driver' },
    redact: { paths: REDACT_PATHS, censor: '***stripped***' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  // Synchronous on stdout: the driver leaves with _exit (handover, takeover) and may be SIGKILLed, and an async
  // line still queued in libuv's threadpool (shared with the blocking /dev/fuse reads) would be lost. The log is
  // a few lines per publish or rotation, so blocking writes cost nothing measurable.
  return pino(opts, dest ?? pino.destination({ dest: 1, sync: true }));
}
