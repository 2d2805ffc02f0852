// Calls a provider plugin's Mount over its unix socket, the way upstream does:
// socket `<dir>/<provider>.sock` searched in the configured order, insecure
// transport (the socket's file permissions are the access control), authority
// "localhost", retry on UNAVAILABLE (3 attempts, 1s initial backoff, ×1.1, 10s
// max), wait-for-ready, and a receive limit (--max-call-recv-msg-size).
//
// Unlike upstream the socket path is looked up again on every call, so a
// provider that moves its socket (or is installed after the driver) is found
// without restarting the driver.

import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { CSIDriverProviderService, MountRequest, type MountResponse } from '../gen/provider/v1alpha1/service.js';
import { errors, grpcStatusText, type DriverError } from '../errors.js';
import { validateFiles, type ProviderFile } from './paths.js';
import { MOUNT_PATH, MountChunkScrubber, mountResponseDeserializer, type SecretAlloc } from './response-memory.js';

const PROVIDER_NAME = /^[a-zA-Z0-9_-]{0,30}$/;

export const SERVICE_CONFIG = {
  methodConfig: [
    {
      name: [{ service: 'v1alpha1.CSIDriverProvider' }],
      waitForReady: true,
      retryPolicy: {
        maxAttempts: 3,
        initialBackoff: '1s',
        maxBackoff: '10s',
        backoffMultiplier: 1.1,
        retryableStatusCodes: ['UNAVAILABLE'],
      },
    },
  ],
};

export interface ProviderClientOptions {
  /** Directories searched for `<provider>.sock`, in order. */
  readonly socketDirs: readonly string[];
  readonly maxRecvMsgSize: number;
  /**
   * Memory for the files of a response (the driver's secret allocator:
   * locked, non-dumpable pages). The encoded response is zeroed as soon as
   * they are copied there (docs/memory.md).
   */
  readonly alloc: SecretAlloc;
}

export interface MountResult {
  /** One entry per object id (see lastVersionPerId). */
  readonly objectVersions: Array<{ id: string; version: string }>;
  readonly files: ProviderFile[];
  /** Size of the encoded response, for the >1 MiB warning. */
  readonly responseBytes: number;
}

/**
 * One entry per object id, the last one for an id winning, in the order the
 * ids first appear. Upstream keeps a provider's versions in a map keyed by
 * id, so a repeated id (one Key Vault secret listed at its latest version and
 * again pinned under an alias) is one object whose version is the last one
 * sent. Everything downstream (the change check, current_object_version,
 * status objects, the keeper state) relies on ids being unique.
 */
export function lastVersionPerId(versions: readonly { id: string; version: string }[]): Array<{ id: string; version: string }> {
  const byId = new Map<string, string>();
  for (const v of versions) byId.set(v.id, v.version); // an existing key keeps its position
  return [...byId].map(([id, version]) => ({ id, version }));
}

/** Zeroes the content buffers of a response (secret memory of their own, see mountResponseDeserializer). */
export function scrubResponse(files: readonly ProviderFile[]): void {
  for (const f of files) if (f.contents instanceof Uint8Array) f.contents.fill(0);
}

export class ProviderClients {
  private readonly clients = new Map<string, Client>();
  private readonly deserialize: (message: Buffer) => MountResponse;
  private readonly chunks = new MountChunkScrubber();

  constructor(private readonly opts: ProviderClientOptions) {
    this.deserialize = mountResponseDeserializer(opts.alloc);
  }

  /** Finds the socket of `provider`; throws upstream's errors for a bad name or no socket. */
  async resolveSocket(provider: string): Promise<string> {
    if (!PROVIDER_NAME.test(provider)) throw errors.invalidProvider(`invalid provider: provider ${JSON.stringify(provider)}`);
    for (const dir of this.opts.socketDirs) {
      const p = join(dir, `${provider}.sock`);
      try {
        await stat(p);
        return p;
      } catch {
        // try the next directory
      }
    }
    throw errors.providerNotFound(`provider not found: provider ${JSON.stringify(provider)}`);
  }

  private client(socketPath: string): Client {
    let c = this.clients.get(socketPath);
    if (!c) {
      c = new Client(`unix:${socketPath}`, credentials.createInsecure(), {
        'grpc.default_authority': 'localhost',
        'grpc.service_config': JSON.stringify(SERVICE_CONFIG),
        'grpc.max_receive_message_length': this.opts.maxRecvMsgSize,
        'grpc.enable_retries': 1,
      });
      this.clients.set(socketPath, c);
    }
    return c;
  }

  /**
   * Calls Mount and validates the answer. Every failure is a DriverError with
   * upstream's message; nothing of the response survives a failure.
   */
  async mount(provider: string, req: MountRequest, deadline: Date): Promise<MountResult> {
    let socket: string;
    try {
      socket = await this.resolveSocket(provider);
    } catch (e) {
      throw (e as DriverError).withPrefix(`error connecting to provider ${JSON.stringify(provider)}: `);
    }
    const resp = await new Promise<MountResponse>((resolve, reject) => {
      this.client(socket).makeUnaryRequest(
        MOUNT_PATH,
        CSIDriverProviderService.mount.requestSerialize,
        this.deserialize,
        req,
        new Metadata(),
        { deadline },
        (err, res) => (err || !res ? reject(err ?? new Error('no response')) : resolve(res)),
      );
    }).catch((e: ServiceError) => {
      throw providerCallError(e, req, this.opts.maxRecvMsgSize);
    });
    const files: ProviderFile[] = resp.files.map((f) => ({ path: f.path, mode: f.mode, contents: f.contents }));
    try {
      if (resp.error && resp.error.code.length > 0) throw errors.providerErrorCode(resp.error.code);
      if (resp.objectVersion.length === 0) throw errors.missingObjectVersions('missing object versions');
      const bad = validateFiles(files);
      if (bad) throw errors.invalidResponse(bad);
    } catch (e) {
      scrubResponse(files);
      throw e;
    }
    const responseBytes = files.reduce((n, f) => n + f.contents.length + f.path.length, 0);
    return {
      objectVersions: lastVersionPerId(resp.objectVersion),
      files,
      responseBytes,
    };
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    this.chunks.close();
  }
}

function providerCallError(e: ServiceError, req: MountRequest, maxRecvMsgSize: number): DriverError {
  const code = typeof e.code === 'number' ? e.code : status.UNKNOWN;
  let details = e.details ?? e.message;
  if (code === status.RESOURCE_EXHAUSTED) details += oversizeHint(details, req, maxRecvMsgSize);
  // The provider's own status is the most useful code for the CSI caller:
  // UNAVAILABLE and DEADLINE_EXCEEDED tell kubelet to retry, the rest are final.
  return errors.providerCall(code === status.OK ? status.UNKNOWN : code, grpcStatusText(code, details), e);
}

/**
 * What to change when a message was over a size limit. Both receivers word
 * it alike ("received message larger than max (<size> vs <limit>)"): it is
 * the request, refused by the provider, when the limit is not ours or the
 * size is the request's; otherwise our limit refused the response.
 */
function oversizeHint(details: string, req: MountRequest, maxRecvMsgSize: number): string {
  if (!/larger than/i.test(details)) return '';
  const request =
    ' (the request is larger than the provider accepts: its attributes (SecretProviderClass parameters, pod ' +
    "information, service account tokens), secrets (nodePublishSecretRef) and permission exceed the provider's maximum receive " +
    "message size; make them smaller or raise the provider's limit)";
  const response = ` (the provider's response is larger than --max-call-recv-msg-size (${maxRecvMsgSize} bytes) allows; raise it to accept larger responses)`;
  // grpc-js "Sent message larger than max", grpc-go "trying to send message larger than max".
  if (/\bsen[dt] message/i.test(details)) return " (the provider's response is larger than the provider's own maximum send message size)";
  const sized = /\((\d+) vs\.? (\d+)\)/.exec(details);
  if (sized) return Number(sized[2]) !== maxRecvMsgSize || Number(sized[1]) === encodedSize(req) ? request : response;
  const limit = /larger than (?:max )?(\d+)/i.exec(details); // "decompresses to a size larger than <limit>"
  if (limit) return Number(limit[1]) === maxRecvMsgSize ? response : request;
  return (
    " (either the request (attributes, secrets, permission) exceeds the provider's maximum receive message size, " +
    `or the response exceeds --max-call-recv-msg-size (${maxRecvMsgSize} bytes))`
  );
}

/** The request's size on the wire; the encoding holds the publish secrets, so it is zeroed at once. */
function encodedSize(req: MountRequest): number {
  const bytes = MountRequest.encode(req).finish();
  const n = bytes.length;
  bytes.fill(0);
  return n;
}
