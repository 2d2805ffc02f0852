// CSI Identity, Node and Controller RPCs of the real driver process over its
// unix socket: plugin info, capabilities, node info, unimplemented RPCs, and
// every argument check of publish, unpublish, stage and unstage.

import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import {
  ControllerClient,
  NodeServiceCapability_RPC_Type,
  PluginCapability_Service_Type,
  type GetPluginInfoResponse,
  type GetPluginCapabilitiesResponse,
  type ProbeResponse,
  type NodeGetInfoResponse,
  type NodeGetCapabilitiesResponse,
  type ControllerGetCapabilitiesResponse,
} from '../src/gen/csi/v1/csi.js';
import { credentials, type ServiceError } from '@grpc/grpc-js';
import { Harness, grpcCode, mountsUnder, type Tap } from './helpers/harness.js';

type Cb<R> = (e: ServiceError | null, r: R) => void;
/** Promise of a unary call: `u<Res>((cb) => client.method(req, cb))`. */
const u = <R>(f: (cb: Cb<R>) => unknown): Promise<R> => new Promise((res, rej) => f((e, r) => (e ? rej(e) : res(r))));

t.test('identity and node service', async (t) => {
  const h = await Harness.start(t as Tap);

  const info = await u<GetPluginInfoResponse>((cb) => h.identity.getPluginInfo({}, cb));
  t.equal(info.name, 'secrets-store.csi.k8s.io');
  t.match(info.vendorVersion, /^v\d+\.\d+\.\d+/);

  const caps = await u<GetPluginCapabilitiesResponse>((cb) => h.identity.getPluginCapabilities({}, cb));
  t.same(
    caps.capabilities,
    [{ type: { $case: 'service', value: { type: PluginCapability_Service_Type.CONTROLLER_SERVICE } } }],
    'CONTROLLER_SERVICE is advertised, as upstream does',
  );

  const probe = await u<ProbeResponse>((cb) => h.identity.probe({}, cb));
  t.equal(probe.ready, true);

  const ni = await u<NodeGetInfoResponse>((cb) => h.node.nodeGetInfo({}, cb));
  t.equal(ni.nodeId, 'test-node');

  const nc = await u<NodeGetCapabilitiesResponse>((cb) => h.node.nodeGetCapabilities({}, cb));
  t.same(
    nc.capabilities.map((c) => (c.type?.$case === 'rpc' ? c.type.value.type : null)),
    [NodeServiceCapability_RPC_Type.STAGE_UNSTAGE_VOLUME, NodeServiceCapability_RPC_Type.VOLUME_MOUNT_GROUP],
    'STAGE_UNSTAGE_VOLUME as upstream; VOLUME_MOUNT_GROUP beyond it (the pod fsGroup, docs/fsgroup.md)',
  );

  const stats = await u<unknown>((cb) => h.node.nodeGetVolumeStats({ volumeId: 'v', volumePath: '/x', stagingTargetPath: '' }, cb)).catch(
    (e: unknown) => e,
  );
  t.equal(grpcCode(stats), status.UNIMPLEMENTED);
  const expand = await u<unknown>((cb) =>
    h.node.nodeExpandVolume({ volumeId: 'v', volumePath: '/x', stagingTargetPath: '', secrets: {} }, cb),
  ).catch((e: unknown) => e);
  t.equal(grpcCode(expand), status.UNIMPLEMENTED);
  t.match((expand as Error).message, /NodeExpandVolume is not implemented/);

  const controller = new ControllerClient(`unix:${h.sock}`, credentials.createInsecure());
  t.teardown(() => controller.close());
  // Upstream lists one RPC_UNKNOWN capability, which csi-sanity rejects; an empty list says the same.
  const cc = await u<ControllerGetCapabilitiesResponse>((cb) => controller.controllerGetCapabilities({}, cb));
  t.same(cc.capabilities, [], 'the controller has no capabilities');
  const cv = await u<unknown>((cb) =>
    controller.createVolume({ name: 'x', parameters: {}, secrets: {}, volumeCapabilities: [], mutableParameters: {} }, cb),
  ).catch((e: unknown) => e);
  t.equal(grpcCode(cv), status.UNIMPLEMENTED, 'every other controller RPC answers Unimplemented');
  t.match((cv as Error).message, /CreateVolume is not implemented/);
  const dv = await u<unknown>((cb) => controller.deleteVolume({ volumeId: 'x', secrets: {} }, cb)).catch((e: unknown) => e);
  t.equal(grpcCode(dv), status.UNIMPLEMENTED);
  const cp = await u<unknown>((cb) =>
    controller.controllerPublishVolume({ volumeId: 'x', nodeId: 'n', readonly: true, secrets: {}, volumeContext: {} }, cb),
  ).catch((e: unknown) => e);
  t.equal(grpcCode(cp), status.UNIMPLEMENTED);

  const vc = { accessType: { $case: 'mount' as const, value: { fsType: '', mountFlags: [], volumeMountGroup: '' } } };
  t.same(
    await u<unknown>((cb) =>
      h.node.nodeStageVolume(
        { volumeId: 'v', stagingTargetPath: '/s', volumeCapability: vc, publishContext: {}, secrets: {}, volumeContext: {} },
        cb,
      ),
    ),
    {},
  );
  t.same(await u<unknown>((cb) => h.node.nodeUnstageVolume({ volumeId: 'v', stagingTargetPath: '/s' }, cb)), {});
  for (const [req, msg] of [
    [{ volumeId: '', stagingTargetPath: '/s', volumeCapability: vc }, 'Volume ID missing in request'],
    [{ volumeId: 'v', stagingTargetPath: '', volumeCapability: vc }, 'Target path missing in request'],
    [{ volumeId: 'v', stagingTargetPath: '/s' }, 'Volume capability missing in request'],
  ] as const) {
    const e = await u<unknown>((cb) => h.node.nodeStageVolume({ publishContext: {}, secrets: {}, volumeContext: {}, ...req }, cb)).catch(
      (x: unknown) => x,
    );
    t.equal(grpcCode(e), status.INVALID_ARGUMENT, `stage: ${msg}`);
    t.match((e as Error).message, msg);
  }
  const us = await u<unknown>((cb) => h.node.nodeUnstageVolume({ volumeId: '', stagingTargetPath: '/s' }, cb)).catch((x: unknown) => x);
  t.equal(grpcCode(us), status.INVALID_ARGUMENT);
});

t.test('publish and unpublish argument checks answer InvalidArgument and mount nothing', async (t) => {
  const h = await Harness.start(t as Tap);
  await h.source('s.json', { files: [{ path: 'a', contents: 'x' }] });
  await h.spc('spc1', 's.json');
  const target = h.target('args');
  const base = h.publishRequest(target, 'spc1');
  const cases: Array<[string, typeof base, string]> = [
    ['no capability', { ...base, volumeCapability: undefined }, 'Volume capability missing in request'],
    ['no volume id', { ...base, volumeId: '' }, 'Volume ID missing in request'],
    ['no target path', { ...base, targetPath: '' }, 'Target path missing in request'],
    ['no volume context', { ...base, volumeContext: {} }, 'Volume attributes missing in request'],
    ['relative target path', { ...base, targetPath: 'relative/mount' }, 'Target path must be an absolute path'],
    ['target path with ..', { ...base, targetPath: `${h.dir}/../etc` }, "without '..'"],
    ['block access', { ...base, volumeCapability: { accessType: { $case: 'block', value: {} } } }, 'Block access type is not supported'],
    ['readonly=false', { ...base, readonly: false }, 'Readonly is not true in request'],
  ];
  for (const [name, req, msg] of cases) {
    const e = await h.publish(req).catch((x: unknown) => x);
    t.equal(grpcCode(e), status.INVALID_ARGUMENT, `${name}: InvalidArgument`);
    t.match((e as Error).message, msg, `${name}: message`);
  }
  t.same(await mountsUnder(h.dir + '/pods'), [], 'nothing mounted');
  t.equal(h.providerMounts(), 0, 'the provider was never called');

  for (const [req, msg] of [
    [{ volumeId: '', targetPath: target }, 'Volume ID missing in request'],
    [{ volumeId: 'v', targetPath: '' }, 'Target path missing in request'],
    [{ volumeId: 'v', targetPath: 'rel' }, 'Target path must be an absolute path'],
  ] as const) {
    const e = await u<unknown>((cb) => h.node.nodeUnpublishVolume(req, cb)).catch((x: unknown) => x);
    t.equal(grpcCode(e), status.INVALID_ARGUMENT);
    t.match((e as Error).message, msg);
  }
  // Unpublishing a path that was never published succeeds (kubelet retries must converge).
  await h.unpublish(h.target('never'));
  t.pass('unpublish of an unknown path is a no-op');
});

t.test('csi-sanity mock hooks: mock_provider publishes an empty volume; /tmp/csi/mount unpublish is a no-op', async (t) => {
  const h = await Harness.start(t as Tap);
  const target = h.target('mock');
  await h.publish(h.publishRequest(target, '', { volumeContext: { providerName: 'mock_provider' } }));
  t.same(await mountsUnder(target), [target]);
  t.equal(h.providerMounts(), 0);
  await h.unpublish(target);
  t.same(await mountsUnder(target), []);

  // As upstream, the hook returns before the readonly check (csi-sanity publishes with readonly=false);
  // the mount is read-only all the same.
  const rw = h.target('mock-rw');
  await h.publish(h.publishRequest(rw, '', { readonly: false, volumeContext: { providerName: 'mock_provider' } }));
  t.same(await mountsUnder(rw), [rw]);
  const e = await writeFile(join(rw, 'x'), 'y').catch((x: unknown) => x);
  t.equal((e as NodeJS.ErrnoException)?.code, 'EROFS', 'the mock volume is read-only');
  await h.unpublish(rw);
  t.same(await mountsUnder(rw), []);
});
