#!/usr/bin/env node
// secrets-store-csi-driver: the CSI node plugin.
// Blocking reads of /dev/fuse occupy libuv threadpool threads; size the pool
// before anything uses it.
process.env.UV_THREADPOOL_SIZE ??= '16';

const { parseFlags, usage } = await import('../cli/flags.js');
const { driverVersion } = await import('../cli/version.js');

let flags;
try {
  flags = parseFlags(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`${(e as Error).message}\nUsage of secrets-store-csi-driver:\n${usage()}\n`);
  process.exit(2);
}
if (flags.help) {
  process.stdout.write(`Usage of secrets-store-csi-driver:\n${usage()}\n`);
  process.exit(0);
}
if (flags.version) {
  process.stdout.write(`${JSON.stringify({ version: driverVersion(), runtime: `node ${process.version}` })}\n`);
  process.exit(0);
}

const { startDriver } = await import('../cli/driver.js');
const driver = await startDriver(flags).catch(async (e: unknown): Promise<never> => {
  process.stderr.write(`secrets-store-csi-driver: ${(e as Error).message}\n`);
  // _exit: a start that failed after the FUSE connection was opened may still
  // have a threadpool thread in read(2) of /dev/fuse, which process.exit() would wait for.
  const { loadNative } = await import('../native/addon.js');
  return loadNative().exitNow(1);
});
const STOP_LIMIT_MS = 10_000;
let stopping = false;
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    driver.log.info({ signal: sig }, 'shutting down');
    // Every step of stop() is bounded; this bounds the whole, whatever a step waits on
    // (not unref'd: an empty event loop would start a normal exit, which waits for every thread).
    setTimeout(() => {
      driver.log.warn({ afterMs: STOP_LIMIT_MS }, 'shutdown did not finish in time; exiting now');
      void driver.exit(1);
    }, STOP_LIMIT_MS);
    void driver.stop().finally(() => void driver.exit());
  });
}
