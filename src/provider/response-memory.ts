// Keeps the bytes of provider Mount responses out of ordinary memory
// (docs/memory.md). grpc-js receives a response as HTTP/2 DATA chunks (views
// into Node's socket read buffers), concatenates them into one message
// buffer and hands that to the deserializer; the generated decoder then
// copies every file's contents once more. None of these copies is ever
// zeroed by grpc-js or Node, and their memory goes back to malloc as it was.
//
// Here the deserializer moves each file's contents into secret memory (locked,
// non-dumpable pages) and zeroes both the message buffer and the decoder's
// copies before it returns; a diagnostics_channel subscriber remembers the
// DATA chunks of every Mount stream and zeroes them once the stream is
// closed, when grpc-js has long concatenated them.

import diagnosticsChannel from 'node:diagnostics_channel';
import type { ClientHttp2Stream, OutgoingHttpHeaders } from 'node:http2';
import { CSIDriverProviderService, MountResponse } from '../gen/provider/v1alpha1/service.js';

export const MOUNT_PATH = CSIDriverProviderService.mount.path;

/** Memory for one secret (native allocSecure through secretAllocator). */
export type SecretAlloc = (size: number) => Buffer;

/**
 * A Mount response deserializer: file contents end up in `alloc`'ed buffers
 * and the message bytes it was given are zeroed, whether decoding succeeded
 * or not.
 */
export function mountResponseDeserializer(alloc: SecretAlloc): (message: Buffer) => MountResponse {
  return (message) => {
    try {
      const resp = MountResponse.decode(message);
      for (const f of resp.files) {
        const decoded = f.contents;
        f.contents = decoded.length > 0 ? alloc(decoded.length) : Buffer.alloc(0);
        decoded.copy(f.contents);
        decoded.fill(0);
      }
      return resp;
    } finally {
      message.fill(0);
    }
  };
}

const STREAM_CREATED = 'http2.client.stream.created';

interface StreamCreated {
  readonly stream: ClientHttp2Stream;
  readonly headers: OutgoingHttpHeaders;
}

/**
 * Zeroes the received DATA chunks of every HTTP/2 client stream calling
 * Mount in this process, when the stream closes. Safe for grpc-js: its
 * decoder copies chunks into the message synchronously as they arrive, and
 * keeps none past the end of a unary call. Subscribed until close().
 */
export class MountChunkScrubber {
  private readonly onCreated = (msg: unknown): void => {
    const { stream, headers } = msg as StreamCreated;
    if (headers[':path'] !== MOUNT_PATH) return;
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('close', () => {
      for (const c of chunks) c.fill(0);
      chunks.length = 0;
    });
  };

  constructor() {
    diagnosticsChannel.subscribe(STREAM_CREATED, this.onCreated);
  }

  close(): void {
    diagnosticsChannel.unsubscribe(STREAM_CREATED, this.onCreated);
  }
}
