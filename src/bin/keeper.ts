#!/usr/bin/env node
// secrets-store-csi-keeper: holds the driver's FUSE connection and state
// across driver restarts and upgrades (docs/restart-survival.md).
//   --socket /var/run/secrets-store-csi-driver/keeper.sock
import { loadNative, hardenProcess, secretAllocator } from '../native/addon.js';
import { Keeper } from '../takeover/keeper.js';

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  process.stdout.write(
    [
      'Usage of secrets-store-csi-keeper:',
      '  --socket <string>',
      '      unix socket the driver connects to with --keeper-socket (default "/var/run/secrets-store-csi-driver/keeper.sock")',
      '  --lock-memory',
      '      lock the state it holds in RAM so secrets never reach swap (default true; --lock-memory=false turns it off)',
      '  --help',
      '      print this help',
      '',
    ].join('\n'),
  );
  process.exit(0);
}
const opt = (name: string, def: string): string => {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === `--${name}`) return args[i + 1] ?? def;
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
  }
  return def;
};
const log =
  (level: string) =>
  (obj: object, msg: string): void => {
    process.stdout.write(
      `${JSON.stringify({ level, time: new Date().toISOString(), component: 'secrets-store-csi-keeper', ...obj, msg })}\n`,
    );
  };
const native = loadNative();
hardenProcess(native, { lockMemory: false });
const secrets = secretAllocator(native, opt('lock-memory', 'true') !== 'false');
if (secrets.lockError) log('warn')({ err: secrets.lockError }, 'could not lock memory');
const keeper = new Keeper(native, {
  socketPath: opt('socket', '/var/run/secrets-store-csi-driver/keeper.sock'),
  log: { info: log('info'), warn: log('warn') },
  alloc: secrets.allocate,
});
keeper.start();
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    // Exiting drops the last reference to the connection only if no driver holds it.
    keeper.stop();
    process.exit(0);
  });
}
