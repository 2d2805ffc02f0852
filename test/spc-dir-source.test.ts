// --secret-provider-class-dir: one manifest that cannot be parsed is skipped
// with a warning naming the file, and never quoted (a manifest may hold
// credentials in its parameters); every other SPC is still found.

import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DirSpcSource, loadSpcDir } from '../src/spc/dir-source.js';
import { isDriverError } from '../src/errors.js';
import { Harness, canary, tempDir, warningLines, type Tap } from './helpers/harness.js';

const good = (name: string): string =>
  [
    'apiVersion: secrets-store.csi.x-k8s.io/v1',
    'kind: SecretProviderClass',
    `metadata: {name: ${name}, namespace: default}`,
    'spec:',
    '  provider: example',
    '  parameters:',
    '    secretsFile: /x.json',
    '',
  ].join('\n');

/** Manifests the parser rejects, each with the canary on or next to the offending line. */
const bad = (secret: string): Record<string, string> => ({
  'unterminated.yaml': `${good('in-bad-1')}    password: "${secret}\n    broken: [\n`,
  'indent.yaml': `${good('in-bad-2')}    password: ${secret}\n   clientSecret: ${secret}\n  - ${secret}\n`,
  'alias.yaml': `${good('in-bad-3')}    password: *${secret}\n`,
  'tab.json': `{"kind": "SecretProviderClass", "spec": {"parameters": {"password": "${secret}"}\n`,
});

interface Warned {
  obj: Record<string, unknown>;
  msg: string;
}

async function setup(t: Tap, secret: string): Promise<{ dir: string; src: DirSpcSource; warned: Warned[] }> {
  const dir = await tempDir(t, 'sscsi-spcdir-');
  await writeFile(join(dir, 'a-good.yaml'), good('app'));
  for (const [name, text] of Object.entries(bad(secret))) await writeFile(join(dir, name), text);
  await writeFile(join(dir, 'z-good.yaml'), good('other'));
  const warned: Warned[] = [];
  return { dir, src: new DirSpcSource(dir, { warn: (obj, msg) => warned.push({ obj: obj as Record<string, unknown>, msg }) }), warned };
}

t.test('a malformed manifest is skipped with a warning naming it; the other SPCs are found', async (t) => {
  const secret = canary('spc-dir');
  const { dir, src, warned } = await setup(t as Tap, secret);
  const loaded = await loadSpcDir(dir);
  t.same(
    loaded.spcs.map((s) => s.metadata?.name),
    ['app', 'other'],
  );
  t.same(loaded.skipped.map((s) => s.file).sort(), Object.keys(bad(secret)).sort(), 'every malformed file is skipped, by name');

  t.equal((await src.get('default', 'app')).metadata?.name, 'app', 'a lookup of a good SPC works');
  t.equal((await src.get('default', 'other')).metadata?.name, 'other', 'so does one after the bad files');
  t.same(
    warned.map((w) => w.obj.file).sort(),
    Object.keys(bad(secret))
      .map((n) => join(dir, n))
      .sort(),
    'one warning per bad file, naming it',
  );
  t.same(
    warned.map((w) => typeof w.obj.reason),
    warned.map(() => 'string'),
    'and saying what is wrong',
  );
  t.notMatch(JSON.stringify(warned), secret, 'no warning quotes the file');

  const err = await src.get('default', 'in-bad-1').then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(isDriverError(err) && err.code === 'ERR_SPC_NOT_FOUND', 'an SPC in a skipped file is not found');
  t.match((err as Error).message, /unterminated\.yaml/, 'the error names the skipped files');
  t.notMatch(`${(err as Error).message} ${JSON.stringify(err)} ${String((err as Error).cause ?? '')}`, secret, 'and quotes none of them');

  warned.length = 0;
  await src.get('default', 'app');
  t.same(warned, [], 'the same bad files are not warned about again on every lookup');
  await writeFile(join(dir, 'unterminated.yaml'), good('in-bad-1'));
  t.equal((await src.get('default', 'in-bad-1')).metadata?.name, 'in-bad-1', 'a repaired file is read again');
});

t.test("through the driver: no error and no log line carries a malformed manifest's content", async (t) => {
  const secret = canary('spc-dir-driver');
  const h = await Harness.start(t as Tap, { driverArgs: ['--enable-secret-rotation=false'] });
  await h.source('s.json', { files: [{ path: 'a', contents: 'served' }] });
  await h.spc('app', 's.json');
  for (const [name, text] of Object.entries(bad(secret))) await writeFile(join(h.spcDir, name), text);
  const target = h.target('spc-dir');
  await h.publish(h.publishRequest(target, 'app'));
  t.pass('a volume whose SPC is in a good file is published');
  const other = h.target('spc-dir-bad');
  const err = await h.publish(h.publishRequest(other, 'in-bad-1')).then(
    () => null,
    (e: unknown) => e as Error,
  );
  t.ok(err, 'a volume whose SPC is in a bad file fails');
  t.notMatch(err?.message ?? '', secret, 'its error quotes nothing of the file');
  t.match(err?.message ?? '', /not found/);
  t.ok(
    warningLines(h.driver.out).some((l) => l.includes('unterminated.yaml')),
    'the driver warns, naming the file',
  );
  t.notMatch(h.driver.out, secret, 'no log line carries the canary');
  await h.unpublish(target);
});
