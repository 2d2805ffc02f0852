#!/usr/bin/env node
// secrets-store-example-provider: a provider plugin serving secrets from a file.
//   --endpoint unix:///var/run/secrets-store-csi-providers/example.sock
//   --secrets-file /path/to/secrets.yaml
import { startExampleProvider } from '../example-provider/server.js';
import { parseEndpoint } from '../csi/endpoint.js';
import { driverVersion } from '../cli/version.js';

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  process.stdout.write(
    [
      'Usage of secrets-store-example-provider:',
      '  --endpoint <string>',
      '      unix socket to listen on (default "unix:///var/run/secrets-store-csi-providers/example.sock")',
      '  --secrets-file <string>',
      '      the file to serve when a SecretProviderClass sets no secretsFile parameter',
      '  --help',
      '      print this help',
      '',
    ].join('\n'),
  );
  process.exit(0);
}
const opt = (name: string): string | undefined => {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === `--${name}` || a === `-${name}`) return args[i + 1];
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
  }
  return undefined;
};
const endpoint = opt('endpoint') ?? 'unix:///var/run/secrets-store-csi-providers/example.sock';
const ep = parseEndpoint(endpoint);
if (ep.kind !== 'unix') {
  process.stderr.write('--endpoint must be unix://\n');
  process.exit(2);
}
const secretsFile = opt('secrets-file');
const server = await startExampleProvider({
  socketPath: ep.path,
  version: driverVersion(),
  ...(secretsFile ? { secretsFile } : {}),
  log: (msg, fields) => process.stdout.write(`${JSON.stringify({ level: 'info', component: 'example-provider', msg, ...fields })}\n`),
});
process.stdout.write(`${JSON.stringify({ level: 'info', component: 'example-provider', msg: 'listening', endpoint })}\n`);
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => server.tryShutdown(() => process.exit(0)));
