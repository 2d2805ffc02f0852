// Unit tests of the CSI request checks (src/csi/validate.ts), endpoint parsing
// (src/csi/endpoint.ts) and the driver errors (src/errors.ts).

import { status } from '@grpc/grpc-js';
import t from 'tap';
import { errMsg } from './helpers/errors.js';
import { checkPublish, checkUnpublish, checkStage, checkUnstage } from '../src/csi/validate.js';
import { parseEndpoint, grpcAddress } from '../src/csi/endpoint.js';
import { canonicalTargetPath, checkUnderKubeletRoot, realTargetPath, resolveKubeletRoot } from '../src/csi/target-path.js';
import { DriverError, ErrorType, errors, grpcStatusText, isDriverError } from '../src/errors.js';
import {
  VolumeCapability_AccessMode_Mode,
  type NodePublishVolumeRequest,
  type NodeUnpublishVolumeRequest,
  type NodeStageVolumeRequest,
  type NodeUnstageVolumeRequest,
  type VolumeCapability,
} from '../src/gen/csi/v1/csi.js';

/** The gRPC code of what `f` throws. */
function codeOf(f: () => unknown): number | undefined {
  try {
    f();
  } catch (e) {
    return isDriverError(e) ? e.grpcCode : undefined;
  }
  return undefined;
}

const TARGET = '/var/lib/kubelet/pods/0d1c/volumes/kubernetes.io~csi/secrets/mount';

const mountCap = (): VolumeCapability => ({
  accessType: { $case: 'mount', value: { fsType: '', mountFlags: [], volumeMountGroup: '' } },
  accessMode: { mode: VolumeCapability_AccessMode_Mode.SINGLE_NODE_READER_ONLY },
});

function pub(over: Partial<NodePublishVolumeRequest> = {}): NodePublishVolumeRequest {
  return {
    volumeId: 'csi-0123abcd',
    publishContext: {},
    stagingTargetPath: '',
    targetPath: TARGET,
    volumeCapability: mountCap(),
    readonly: true,
    secrets: {},
    volumeContext: { secretProviderClass: 'my-spc', 'csi.storage.k8s.io/pod.name': 'web-0' },
    ...over,
  };
}

type Tap = typeof t;

/** Asserts `e` is an INVALID_ARGUMENT DriverError with exactly `message`. */
function checkInvalid(t: Pick<Tap, 'ok' | 'equal'>, e: DriverError | null, message: string): void {
  t.ok(e instanceof DriverError, `${message}: a DriverError`);
  t.equal(e?.message, message);
  t.equal(e?.grpcCode, status.INVALID_ARGUMENT, `${message}: INVALID_ARGUMENT`);
  t.equal(e?.code, 'ERR_INVALID_ARGUMENT');
}

t.test('checkPublish: a valid request passes', async (t) => {
  t.equal(checkPublish(pub()), null);
  t.equal(
    checkPublish(pub({ volumeCapability: { accessType: undefined, accessMode: undefined } })),
    null,
    'a capability without access type is not block',
  );
  t.equal(checkPublish(pub({ targetPath: '/a/..b/c' })), null, "'..b' is not a '..' element");
});

t.test('checkPublish: upstream messages in upstream order', async (t) => {
  checkInvalid(t, checkPublish(pub({ volumeCapability: undefined })), 'Volume capability missing in request');
  checkInvalid(t, checkPublish(pub({ volumeId: '' })), 'Volume ID missing in request');
  checkInvalid(t, checkPublish(pub({ targetPath: '' })), 'Target path missing in request');
  checkInvalid(t, checkPublish(pub({ volumeContext: {} })), 'Volume attributes missing in request');
  // With everything missing, the first upstream check wins.
  checkInvalid(
    t,
    checkPublish(pub({ volumeCapability: undefined, volumeId: '', targetPath: '', volumeContext: {} })),
    'Volume capability missing in request',
  );
  checkInvalid(t, checkPublish(pub({ volumeId: '', targetPath: '', volumeContext: {} })), 'Volume ID missing in request');
  checkInvalid(t, checkPublish(pub({ targetPath: '', volumeContext: {} })), 'Target path missing in request');
});

t.test('checkPublish: target path must be absolute and plain', async (t) => {
  checkInvalid(t, checkPublish(pub({ targetPath: 'relative/mount' })), "Target path must be an absolute path without '..': relative/mount");
  checkInvalid(
    t,
    checkPublish(pub({ targetPath: '/var/lib/../../etc' })),
    "Target path must be an absolute path without '..': /var/lib/../../etc",
  );
  checkInvalid(t, checkPublish(pub({ targetPath: '/var/lib/..' })), "Target path must be an absolute path without '..': /var/lib/..");
  const nul = checkPublish(pub({ targetPath: '/var/lib/x\0y' }));
  t.ok(nul, 'NUL rejected');
  t.equal(nul?.grpcCode, status.INVALID_ARGUMENT);
  // Volume attributes are checked before the path shape.
  checkInvalid(t, checkPublish(pub({ targetPath: 'rel', volumeContext: {} })), 'Volume attributes missing in request');
});

t.test('checkPublish: block access is rejected', async (t) => {
  const block: VolumeCapability = { accessType: { $case: 'block', value: {} }, accessMode: undefined };
  checkInvalid(t, checkPublish(pub({ volumeCapability: block })), 'Block access type is not supported, only mount');
  // A bad path is reported before the access type.
  checkInvalid(t, checkPublish(pub({ volumeCapability: block, targetPath: 'x' })), "Target path must be an absolute path without '..': x");
});

t.test('checkUnpublish', async (t) => {
  const ok: NodeUnpublishVolumeRequest = { volumeId: 'v', targetPath: TARGET };
  t.equal(checkUnpublish(ok), null);
  checkInvalid(t, checkUnpublish({ volumeId: '', targetPath: TARGET }), 'Volume ID missing in request');
  checkInvalid(t, checkUnpublish({ volumeId: 'v', targetPath: '' }), 'Target path missing in request');
  checkInvalid(t, checkUnpublish({ volumeId: '', targetPath: '' }), 'Volume ID missing in request');
  checkInvalid(t, checkUnpublish({ volumeId: 'v', targetPath: 'rel/path' }), "Target path must be an absolute path without '..': rel/path");
  checkInvalid(t, checkUnpublish({ volumeId: 'v', targetPath: '/a/../b' }), "Target path must be an absolute path without '..': /a/../b");
});

t.test('checkStage and checkUnstage', async (t) => {
  const stage = (o: Partial<NodeStageVolumeRequest>): NodeStageVolumeRequest => ({
    volumeId: 'v',
    publishContext: {},
    stagingTargetPath: '/staging',
    volumeCapability: mountCap(),
    secrets: {},
    volumeContext: {},
    ...o,
  });
  t.equal(checkStage(stage({})), null, 'volume context is not required for staging');
  checkInvalid(t, checkStage(stage({ volumeId: '' })), 'Volume ID missing in request');
  checkInvalid(t, checkStage(stage({ stagingTargetPath: '' })), 'Target path missing in request');
  checkInvalid(t, checkStage(stage({ volumeCapability: undefined })), 'Volume capability missing in request');
  checkInvalid(t, checkStage(stage({ volumeId: '', volumeCapability: undefined })), 'Volume ID missing in request');

  const unstage = (o: Partial<NodeUnstageVolumeRequest>): NodeUnstageVolumeRequest => ({
    volumeId: 'v',
    stagingTargetPath: '/staging',
    ...o,
  });
  t.equal(checkUnstage(unstage({})), null);
  checkInvalid(t, checkUnstage(unstage({ volumeId: '' })), 'Volume ID missing in request');
  checkInvalid(t, checkUnstage(unstage({ stagingTargetPath: '' })), 'Target path missing in request');
});

t.test('parseEndpoint', async (t) => {
  t.strictSame(parseEndpoint('unix:///csi/csi.sock'), { kind: 'unix', path: '/csi/csi.sock' });
  t.strictSame(parseEndpoint('unix://tmp/csi.sock'), { kind: 'unix', path: 'tmp/csi.sock' }, 'relative path');
  t.strictSame(parseEndpoint('tcp://127.0.0.1:10000'), { kind: 'tcp', address: '127.0.0.1:10000' });
  t.strictSame(parseEndpoint('UNIX:///x.sock'), { kind: 'unix', path: '/x.sock' }, 'scheme is case-insensitive');
  t.strictSame(parseEndpoint('Tcp://[::1]:9000'), { kind: 'tcp', address: '[::1]:9000' });
  for (const bad of ['', '/csi/csi.sock', 'unix://', 'tcp://', 'http://x:1', 'unix:/csi.sock', 'csi.sock', 'unix//x']) {
    t.equal(
      errMsg(() => parseEndpoint(bad)),
      `invalid endpoint: ${bad} (want unix:///path/to/csi.sock or tcp://host:port)`,
      JSON.stringify(bad),
    );
  }
});

t.test('grpcAddress', async (t) => {
  t.equal(grpcAddress(parseEndpoint('unix:///csi/csi.sock')), 'unix:/csi/csi.sock');
  t.equal(grpcAddress(parseEndpoint('unix://tmp/csi.sock')), 'unix:tmp/csi.sock');
  t.equal(grpcAddress(parseEndpoint('tcp://127.0.0.1:10000')), '127.0.0.1:10000');
});

t.test('grpcStatusText uses grpc-go code names', async (t) => {
  t.equal(grpcStatusText(status.UNAVAILABLE, 'x'), 'rpc error: code = Unavailable desc = x');
  t.equal(grpcStatusText(status.CANCELLED, 'x'), 'rpc error: code = Canceled desc = x', 'one l, as grpc-go');
  t.equal(grpcStatusText(status.DEADLINE_EXCEEDED, 'x'), 'rpc error: code = DeadlineExceeded desc = x');
  t.equal(grpcStatusText(status.OK, 'x'), 'rpc error: code = OK desc = x');
  const names: Array<[status, string]> = [
    [status.UNKNOWN, 'Unknown'],
    [status.INVALID_ARGUMENT, 'InvalidArgument'],
    [status.NOT_FOUND, 'NotFound'],
    [status.ALREADY_EXISTS, 'AlreadyExists'],
    [status.PERMISSION_DENIED, 'PermissionDenied'],
    [status.RESOURCE_EXHAUSTED, 'ResourceExhausted'],
    [status.FAILED_PRECONDITION, 'FailedPrecondition'],
    [status.ABORTED, 'Aborted'],
    [status.OUT_OF_RANGE, 'OutOfRange'],
    [status.UNIMPLEMENTED, 'Unimplemented'],
    [status.INTERNAL, 'Internal'],
    [status.DATA_LOSS, 'DataLoss'],
    [status.UNAUTHENTICATED, 'Unauthenticated'],
  ];
  for (const [code, name] of names) t.equal(grpcStatusText(code, 'd'), `rpc error: code = ${name} desc = d`, name);
  t.equal(grpcStatusText(status.INTERNAL, ''), 'rpc error: code = Internal desc = ', 'empty details');
  t.equal(grpcStatusText(status.INTERNAL, 'a: b = c'), 'rpc error: code = Internal desc = a: b = c');
});

t.test('DriverError', async (t) => {
  const cause = new Error('root cause');
  const e = errors.invalidArgument('bad thing', cause);
  t.ok(e instanceof Error);
  t.ok(isDriverError(e));
  t.notOk(isDriverError(new Error('plain')));
  t.notOk(isDriverError(null));
  t.equal(e.name, 'DriverError');
  t.equal(e.message, 'bad thing');
  t.equal(e.code, 'ERR_INVALID_ARGUMENT');
  t.equal(e.grpcCode, status.INVALID_ARGUMENT);
  t.equal(e.errorType, ErrorType.FailedToMount);
  t.equal(e.cause, cause);

  const p = e.withPrefix('failed to mount secrets store objects for pod default/web-0, err: ');
  t.equal(p.message, 'failed to mount secrets store objects for pod default/web-0, err: bad thing');
  t.equal(p.code, e.code);
  t.equal(p.grpcCode, e.grpcCode);
  t.equal(p.errorType, e.errorType);
  t.equal(p.cause, cause);
  t.not(p, e, 'a new error');
  t.equal(e.message, 'bad thing', 'the original is unchanged');

  const spc = errors.spcNotFound('not found');
  t.equal(spc.grpcCode, status.NOT_FOUND);
  t.equal(spc.errorType, 'SecretProviderClassNotFound');
  t.equal(errors.providerNotFound('x').errorType, '', 'upstream reports an empty error_type');
  const call = errors.providerCall(status.DEADLINE_EXCEEDED, 'timeout');
  t.equal(call.grpcCode, status.DEADLINE_EXCEEDED);
  t.equal(call.code, 'ERR_PROVIDER_CALL');
  t.equal(call.errorType, 'GRPCProviderError');
  const pec = errors.providerErrorCode('AccessDenied');
  t.equal(pec.message, 'mount request failed with provider error code AccessDenied');
  t.equal(pec.errorType, 'AccessDenied');
  t.equal(pec.grpcCode, status.INTERNAL);
  t.equal(errors.shuttingDown('bye').grpcCode, status.UNAVAILABLE);
  t.equal(errors.mountPoint('x').errorType, 'FailedToEnsureMountPoint');
  t.equal(errors.invalidResponse('x').errorType, 'FileWriteError');
});

t.test('target path: one canonical spelling, purely lexical', async (t) => {
  t.equal(canonicalTargetPath('/a//b/./c/'), '/a/b/c');
  t.equal(canonicalTargetPath('/a/b/c'), '/a/b/c');
  t.equal(canonicalTargetPath('/a/b//'), '/a/b');
  t.equal(canonicalTargetPath('/'), '/');
  for (const p of ['a/b', './a', '/a/../b', '/a/b/..', '/a/\0b']) {
    const e = errMsg(() => canonicalTargetPath(p));
    t.match(e, /absolute path without '\.\.'/, `${JSON.stringify(p)} refused`);
  }
  t.equal(
    codeOf(() => canonicalTargetPath('rel')),
    status.INVALID_ARGUMENT,
  );
});

t.test('target path: under --kubelet-root-dir by either spelling of the root', async (t) => {
  const root = { configured: '/var/lib/kubelet', resolved: '/data/kubelet' };
  checkUnderKubeletRoot('/var/lib/kubelet/pods/x/mount', root);
  checkUnderKubeletRoot('/data/kubelet/pods/x/mount', root);
  checkUnderKubeletRoot('/anywhere', null);
  for (const p of ['/var/lib/kubelet', '/var/lib/kubelet-other/x', '/etc', '/data']) {
    t.equal(
      codeOf(() => checkUnderKubeletRoot(p, root)),
      status.INVALID_ARGUMENT,
      `${p} refused`,
    );
  }
  t.equal(realTargetPath('/var/lib/kubelet/pods/x', root), '/data/kubelet/pods/x', 'mapped to where the root really is');
  t.equal(realTargetPath('/data/kubelet/pods/x', root), '/data/kubelet/pods/x');
  t.equal(realTargetPath('/var/lib/kubelet/pods/x', null), '/var/lib/kubelet/pods/x');
  t.equal(await resolveKubeletRoot(''), null, 'empty: no check');
});
