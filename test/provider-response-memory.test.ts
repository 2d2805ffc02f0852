// The Mount response deserializer (src/provider/response-memory.ts): file
// contents end up in buffers from the secret allocator, and the message bytes
// it was given are zeroed, also when they do not decode.

import t from 'tap';
import { MountResponse } from '../src/gen/provider/v1alpha1/service.js';
import { mountResponseDeserializer } from '../src/provider/response-memory.js';

const encoded = (): Buffer =>
  Buffer.from(
    MountResponse.encode({
      objectVersion: [{ id: 'a', version: '1' }],
      files: [
        { path: 'a', mode: 0o644, contents: Buffer.from('first secret') },
        { path: 'b', mode: 0o600, contents: Buffer.alloc(0) },
        { path: 'c', mode: 0o600, contents: Buffer.alloc(20_000, 'z') },
      ],
      error: undefined,
    }).finish(),
  );

t.test('contents are copied into allocated buffers and the message is zeroed', async (t) => {
  const allocated: Buffer[] = [];
  const deserialize = mountResponseDeserializer((n) => {
    const b = Buffer.alloc(n);
    allocated.push(b);
    return b;
  });
  // As grpc-js hands it over: a view past the 5-byte frame header of a larger buffer.
  const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), encoded()]);
  const message = framed.subarray(5);
  const resp = deserialize(message);
  t.same(
    resp.files.map((f) => [f.path, f.contents.toString()]),
    [
      ['a', 'first secret'],
      ['b', ''],
      ['c', 'z'.repeat(20_000)],
    ],
  );
  t.ok(
    resp.files[0]!.contents === allocated[0] && resp.files[2]!.contents === allocated[1],
    'non-empty contents are the allocated buffers',
  );
  t.equal(allocated.length, 2, 'nothing is allocated for an empty file');
  t.ok(
    message.every((b) => b === 0),
    'the message bytes are zeroed',
  );
  t.same(resp.objectVersion, [{ id: 'a', version: '1' }], 'the rest of the response is intact');
});

t.test('a message that does not decode is zeroed too', async (t) => {
  const deserialize = mountResponseDeserializer((n) => Buffer.alloc(n));
  const message = encoded().subarray(0, 40); // cut inside a file's contents
  t.throws(() => deserialize(message));
  t.ok(
    message.every((b) => b === 0),
    'zeroed',
  );
});
