#!/usr/bin/env node
// secrets-store-csi-driver-operator: installs and configures the driver from
// the ClusterCSIDriver named secrets-store.csi.k8s.io (docs/install.md).
import { createLogger } from '../observability/log.js';
import { parseOperatorFlags, USAGE } from '../operator/flags.js';
import { startOperator } from '../operator/main.js';

let flags;
try {
  flags = parseOperatorFlags(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n${USAGE}`);
  process.exit(2);
}
if (!flags) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const log = createLogger(flags.logLevel as 'info').child({ component: 'secrets-store-csi-driver-operator' });
const op = await startOperator(flags, log);
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.once(sig, () => {
    log.info({ signal: sig }, 'stopping');
    void op.stop().finally(() => process.exit(0));
  });
}
