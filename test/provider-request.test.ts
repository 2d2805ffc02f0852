// Unit tests of the provider MountRequest construction and of the validation
// and normalization of provider responses: src/provider/go-json.ts,
// mount-request.ts, paths.ts, client.ts (lastVersionPerId).

import t from 'tap';
import { goMarshalStringMap } from '../src/provider/go-json.js';
import {
  buildAttributes,
  buildMountRequest,
  serviceAccountTokens,
  SERVICE_ACCOUNT_TOKENS_KEY,
  FILE_PERMISSION,
} from '../src/provider/mount-request.js';
import { validatePath, validateFiles, MAX_PATH_LENGTH, MAX_FILE_NAME_LENGTH, type ProviderFile } from '../src/provider/paths.js';
import { lastVersionPerId } from '../src/provider/client.js';

const TOKENS = 'csi.storage.k8s.io/serviceAccount.tokens';

t.test('goMarshalStringMap: nil and empty', async (t) => {
  t.equal(goMarshalStringMap(null), 'null', 'nil map');
  t.equal(goMarshalStringMap(undefined), 'null', 'undefined is nil');
  t.equal(goMarshalStringMap({}), '{}', 'empty map');
  t.equal(goMarshalStringMap({ a: '' }), '{"a":""}');
});

t.test('goMarshalStringMap: keys sorted by UTF-8 bytes', async (t) => {
  t.equal(goMarshalStringMap({ b: '2', a: '1', c: '3' }), '{"a":"1","b":"2","c":"3"}');
  t.equal(
    goMarshalStringMap({ a: 'x', B: 'y', _: 'z', '1': 'w' }),
    '{"1":"w","B":"y","_":"z","a":"x"}',
    'bytewise: digits < upper < _ < lower (not locale order)',
  );
  // U+FFFF is EF BF BF in UTF-8, U+10000 is F0 90 80 80: bytewise U+FFFF sorts
  // first, while UTF-16 code-unit order (JS default sort) puts U+10000 (D800 DC00) first.
  t.equal(goMarshalStringMap({ '\u{10000}': '2', '\uffff': '1' }), '{"\uffff":"1","\u{10000}":"2"}');
  t.equal(goMarshalStringMap({ é: '1', z: '2', '\uff21': '3' }), '{"z":"2","é":"1","Ａ":"3"}');
  // Sorting is on the raw key, not its escaped form: '<' (0x3C) < 'A' (0x41)
  // even though its escape starts with '\' (0x5C).
  t.equal(goMarshalStringMap({ A: '1', '<': '2' }), '{"\\u003c":"2","A":"1"}');
  t.equal(goMarshalStringMap({ ab: '1', a: '2', 'a\u0000': '3' }), '{"a":"2","a\\u0000":"3","ab":"1"}', 'prefix first');
  // Integer-like keys: JS objects enumerate them first in numeric order; Go sorts them as strings.
  t.equal(goMarshalStringMap({ b: '1', '10': '2', '9': '3' }), '{"10":"2","9":"3","b":"1"}');
});

t.test('goMarshalStringMap: HTML-safe escapes', async (t) => {
  t.equal(goMarshalStringMap({ k: '<script>&amp;</script>' }), '{"k":"\\u003cscript\\u003e\\u0026amp;\\u003c/script\\u003e"}');
  t.equal(goMarshalStringMap({ '<&>': 'v' }), '{"\\u003c\\u0026\\u003e":"v"}', 'keys are escaped too');
  t.equal(goMarshalStringMap({ k: 'a\u2028b\u2029c' }), '{"k":"a\\u2028b\\u2029c"}', 'U+2028 and U+2029');
  t.equal(goMarshalStringMap({ k: "'/" }), `{"k":"'/"}`, 'quote and slash are not escaped');
});

t.test('goMarshalStringMap: quotes, backslash and control characters', async (t) => {
  t.equal(goMarshalStringMap({ k: 'say "hi"\\' }), '{"k":"say \\"hi\\"\\\\"}');
  t.equal(goMarshalStringMap({ k: '\n\r\t' }), '{"k":"\\n\\r\\t"}');
  t.equal(goMarshalStringMap({ k: '\b\f' }), '{"k":"\\b\\f"}', 'Go 1.22+ short forms');
  t.equal(goMarshalStringMap({ k: '\u0000\u0001\u001f' }), '{"k":"\\u0000\\u0001\\u001f"}', 'lower-case hex');
  t.equal(goMarshalStringMap({ k: '\u007f' }), '{"k":"\u007f"}', 'DEL is not escaped');
  t.equal(goMarshalStringMap({ k: 'ü€😀' }), '{"k":"ü€😀"}', 'non-ASCII stays UTF-8');
  // A realistic upstream attributes map.
  const attrs = {
    'csi.storage.k8s.io/pod.name': 'web-0',
    'csi.storage.k8s.io/pod.namespace': 'default',
    objects: 'array:\n  - |\n    objectName: x\n',
    secretProviderClass: 'spc',
  };
  t.equal(
    goMarshalStringMap(attrs),
    '{"csi.storage.k8s.io/pod.name":"web-0","csi.storage.k8s.io/pod.namespace":"default",' +
      '"objects":"array:\\n  - |\\n    objectName: x\\n","secretProviderClass":"spc"}',
  );
  // The output is valid JSON that parses back to the map.
  const weird = { '<k>': 'v&\u2028\u0001"\\', z: '\uffff' };
  t.strictSame(JSON.parse(goMarshalStringMap(weird)), weird);
});

t.test('serviceAccountTokens', async (t) => {
  t.equal(
    serviceAccountTokens({ [TOKENS]: 'from-secrets' }, { [TOKENS]: 'from-context' }),
    'from-secrets',
    'req.secrets wins (serviceAccountTokenInSecrets)',
  );
  t.equal(serviceAccountTokens({}, { [TOKENS]: 'from-context' }), 'from-context');
  t.equal(serviceAccountTokens({ other: 'x' }, { other: 'y' }), '', 'none: empty string');
  t.equal(SERVICE_ACCOUNT_TOKENS_KEY, TOKENS);
});

t.test('buildAttributes', async (t) => {
  const params = { a: 'param-a', b: 'param-b', objects: 'o' };
  const vc = { b: 'vc-b', c: 'vc-c' };
  const noTokens = buildAttributes(params, vc, '');
  t.strictSame(noTokens, { a: 'param-a', b: 'vc-b', objects: 'o', c: 'vc-c' }, 'volume_context overrides parameters');
  t.notOk(TOKENS in noTokens, 'no tokens key when tokens are empty');

  const withTokens = buildAttributes(params, vc, '{"aud":{"token":"t"}}');
  t.equal(withTokens[TOKENS], '{"aud":{"token":"t"}}');
  t.equal(Object.keys(withTokens).length, 5);

  // The tokens argument overrides a tokens key in parameters or volume_context.
  t.equal(buildAttributes({ [TOKENS]: 'p' }, { [TOKENS]: 'v' }, 'real')[TOKENS], 'real');
  t.equal(buildAttributes({ [TOKENS]: 'p' }, {}, '')[TOKENS], 'p', 'empty tokens leave the key alone');
  t.equal(buildAttributes({}, { [TOKENS]: 'v' }, '')[TOKENS], 'v');

  // Inputs are not mutated.
  t.strictSame(params, { a: 'param-a', b: 'param-b', objects: 'o' });
  t.strictSame(vc, { b: 'vc-b', c: 'vc-c' });
  t.strictSame(buildAttributes({}, {}, ''), {});
});

t.test('buildMountRequest', async (t) => {
  const r = buildMountRequest({
    attributes: { z: '1', a: '<2>' },
    secrets: {},
    targetPath: '/var/lib/kubelet/pods/uid/volumes/kubernetes.io~csi/v/mount',
    currentObjectVersions: [],
  });
  t.strictSame(r, {
    attributes: '{"a":"\\u003c2\\u003e","z":"1"}',
    secrets: 'null',
    targetPath: '/var/lib/kubelet/pods/uid/volumes/kubernetes.io~csi/v/mount',
    permission: '420',
    currentObjectVersion: [],
  });
  t.equal(FILE_PERMISSION, '420', 'JSON of os.FileMode(0644)');
  t.equal(FILE_PERMISSION, String(0o644));

  const versions = [
    { id: 'secret/b', version: '2' },
    { id: 'secret/a', version: '7' },
    { id: 'secret/B', version: '1' },
    { id: 'secret/a/x', version: '3' },
  ];
  const frozen = versions.map((v) => ({ ...v }));
  const r2 = buildMountRequest({
    attributes: {},
    secrets: { password: 'p&w', username: 'u' },
    targetPath: '/t',
    currentObjectVersions: versions,
  });
  t.equal(r2.attributes, '{}', 'empty attributes are {} (not null)');
  t.equal(r2.secrets, '{"password":"p\\u0026w","username":"u"}');
  t.strictSame(
    r2.currentObjectVersion,
    [
      { id: 'secret/B', version: '1' },
      { id: 'secret/a', version: '7' },
      { id: 'secret/a/x', version: '3' },
      { id: 'secret/b', version: '2' },
    ],
    'sorted by id',
  );
  t.strictSame(versions, frozen, 'the input array is not reordered');
  t.not(r2.currentObjectVersion[0], versions[2], 'copies, not the caller objects');
});

t.test('validatePath: rejected paths and their messages', async (t) => {
  const cases: Array<[string, string]> = [
    ['', 'invalid path: must not be empty: ""'],
    ['/etc/passwd', 'invalid path: must be relative path: /etc/passwd'],
    ['/', 'invalid path: must be relative path: /'],
    ['..', "invalid path: must not contain '..': .."],
    ['a/../b', "invalid path: must not contain '..': a/../b"],
    ['a/..', "invalid path: must not contain '..': a/.."],
    ['../a', "invalid path: must not contain '..': ../a"],
    ['..data', "invalid path: must not start with '..': ..data"],
    ['..data/x', "invalid path: must not start with '..': ..data/x"],
    ['...', "invalid path: must not start with '..': ..."],
    ['..2026_01_02_03_04_05.1/f', "invalid path: must not start with '..': ..2026_01_02_03_04_05.1/f"],
    ['./a', 'invalid filepath: "./a"'],
    ['a//b', 'invalid filepath: "a//b"'],
    ['a/', 'invalid filepath: "a/"'],
    ['a/./b', 'invalid filepath: "a/./b"'],
    ['a/.', 'invalid filepath: "a/."'],
    ['.', 'invalid filepath: "."'],
  ];
  for (const [p, msg] of cases) t.equal(validatePath(p), msg, JSON.stringify(p));
});

t.test('validatePath: lengths', async (t) => {
  t.equal(MAX_PATH_LENGTH, 4096);
  t.equal(MAX_FILE_NAME_LENGTH, 255);
  const n255 = 'x'.repeat(255);
  t.equal(validatePath(n255), null, '255-character name is fine');
  t.equal(validatePath(`d/${n255}`), null);
  t.equal(validatePath('x'.repeat(256)), 'invalid path: filenames must be less than or equal to 255 characters');
  t.equal(
    validatePath(`d/${'y'.repeat(256)}/f`),
    'invalid path: filenames must be less than or equal to 255 characters',
    'a middle element',
  );

  // 17 elements (15 x 255, 200, 55) and 16 slashes = 4096 characters exactly.
  const p4096 = [...Array(15).fill(n255), 'a'.repeat(200), 'b'.repeat(55)].join('/');
  t.equal(p4096.length, 4096);
  t.equal(validatePath(p4096), null, '4096 characters is fine');
  t.equal(validatePath(`${p4096}c`), 'invalid path: must be less than or equal to 4096 characters');
  t.equal(
    validatePath('z'.repeat(5000)),
    'invalid path: must be less than or equal to 4096 characters',
    'the path length is checked before the element length',
  );
});

t.test('validatePath: lengths are in UTF-8 bytes, as Go len() counts them', async (t) => {
  // Upstream (Go) validatePath uses len(item) > 255 and len(targetPath) > 4096, i.e. bytes.
  // 128 x 'é' is 128 UTF-16 code units but 256 UTF-8 bytes: upstream rejects it,
  // and it is longer than Linux NAME_MAX (255 bytes).
  t.equal(validatePath('é'.repeat(127)), null, '254 bytes is fine');
  t.equal(
    validatePath('é'.repeat(128)),
    'invalid path: filenames must be less than or equal to 255 characters',
    '256-byte name must be rejected like upstream',
  );
  // 2100 x 'é' = 4200 bytes in one path of short elements.
  const long = Array.from({ length: 21 }, () => 'é'.repeat(100)).join('/');
  t.ok(Buffer.byteLength(long) > 4096 && long.length <= 4096);
  t.equal(
    validatePath(long),
    'invalid path: must be less than or equal to 4096 characters',
    'a path over 4096 bytes must be rejected like upstream',
  );
});

t.test('validatePath: NUL is rejected', async (t) => {
  const msg = validatePath('a\0b');
  t.type(msg, 'string');
  t.ok(msg!.startsWith('invalid filepath: '), msg!);
  // The code replaces NUL by the 4 characters \x00 to print it the way Go's %q
  // does ("a\x00b"), but JSON.stringify then escapes that backslash again.
  t.equal(msg, 'invalid filepath: "a\\x00b"', 'NUL shown as Go %q shows it: one backslash before x00');
  t.equal(validatePath('\0'), 'invalid filepath: "\\x00"');
});

t.test('validatePath: accepted paths', async (t) => {
  for (const p of ['a', 'a/b/c', '.hidden', 'a..b', 'dir/.hidden', 'x/..y', 'a.b/c.d', 'with space', 'ünï/cödé', '-', '.a/b']) {
    t.equal(validatePath(p), null, JSON.stringify(p));
  }
});

const f = (path: string, mode = 0o644): ProviderFile => ({ path, mode, contents: Buffer.from('x') });

t.test('validateFiles', async (t) => {
  t.equal(validateFiles([]), null, 'empty set is fine');
  t.equal(validateFiles([f('a'), f('b/c'), f('b/d'), f('bb')]), null);
  t.equal(validateFiles([f('a'), f('b'), f('a')]), 'invalid path: duplicate path: a');
  t.equal(validateFiles([f('a'), f('a/b')]), 'invalid path: a is both a file and a directory');
  t.equal(validateFiles([f('a/b'), f('a')]), 'invalid path: a is both a file and a directory', 'either order');
  t.equal(validateFiles([f('x/y'), f('x/y/z/w')]), 'invalid path: x/y is both a file and a directory', 'deeper');
  t.equal(validateFiles([f('ab'), f('a/b')]), null, 'a prefix that is not a path element is fine');
  t.equal(validateFiles([f('ok'), f('..data')]), "invalid path: must not start with '..': ..data", 'the first bad path');
  t.equal(
    validateFiles([f('ok'), f('/abs'), f('ok')]),
    'invalid path: must be relative path: /abs',
    'path errors are reported in order, before the duplicate',
  );
});

t.test('validateFiles: modes', async (t) => {
  t.equal(validateFiles([f('a', 0)]), null, 'mode 0 is valid');
  t.equal(validateFiles([f('a', 0o7777)]), null, '07777 is valid');
  t.equal(validateFiles([f('a', 0o4755)]), null);
  t.equal(validateFiles([f('a', -1)]), 'invalid file mode -1 for a: must be between 0 and 4095 (07777)');
  t.equal(validateFiles([f('b', 0o10000)]), 'invalid file mode 4096 for b: must be between 0 and 4095 (07777)');
  t.equal(validateFiles([f('c', 1.5)]), 'invalid file mode 1.5 for c: must be between 0 and 4095 (07777)');
  t.equal(validateFiles([f('d', Number.NaN)]), 'invalid file mode NaN for d: must be between 0 and 4095 (07777)');
  t.equal(
    validateFiles([f('ok'), f('e', 0o100644)]),
    'invalid file mode 33188 for e: must be between 0 and 4095 (07777)',
    'type bits are not accepted',
  );
});

t.test('lastVersionPerId: one entry per id, the last one winning, in first-seen order', async (t) => {
  t.strictSame(lastVersionPerId([]), []);
  const unique = [
    { id: 'secret/b', version: '2' },
    { id: 'secret/a', version: '1' },
  ];
  t.strictSame(lastVersionPerId(unique), unique, 'unique ids: unchanged, in their order');

  // An Azure SPC listing one Key Vault secret at its latest version and again pinned under an alias.
  t.strictSame(
    lastVersionPerId([
      { id: 'secret/db-password', version: 'latest-v9' },
      { id: 'secret/db-password', version: 'pinned-v8' },
    ]),
    [{ id: 'secret/db-password', version: 'pinned-v8' }],
    'latest then pinned: the pinned one (sent last) wins',
  );
  t.strictSame(
    lastVersionPerId([
      { id: 'secret/db-password', version: 'pinned-v8' },
      { id: 'secret/db-password', version: 'latest-v9' },
    ]),
    [{ id: 'secret/db-password', version: 'latest-v9' }],
    'pinned then latest: the latest one wins',
  );

  const input = [
    { id: 'a', version: '1' },
    { id: 'b', version: '1' },
    { id: 'a', version: '2' },
    { id: 'c', version: '1' },
    { id: 'b', version: '0' },
    { id: 'a', version: '3' },
  ];
  const copy = input.map((v) => ({ ...v }));
  const out = lastVersionPerId(input);
  t.strictSame(
    out,
    [
      { id: 'a', version: '3' },
      { id: 'b', version: '0' },
      { id: 'c', version: '1' },
    ],
    'interleaved repeats',
  );
  t.strictSame(input, copy, 'the input is not changed');
  t.strictSame(lastVersionPerId(out), out, 'idempotent: a normalized list stays as it is');
  t.strictSame(
    lastVersionPerId([
      { id: 'x', version: 'v' },
      { id: 'x', version: 'v' },
    ]),
    [{ id: 'x', version: 'v' }],
    'an exact repeat',
  );
  t.strictSame(
    lastVersionPerId([
      { id: '', version: '1' },
      { id: '', version: '2' },
    ]),
    [{ id: '', version: '2' }],
    'the empty id is an id too',
  );
});
