// --endpoint parsing as upstream: "unix://<path>" (the rest after :// is the
// path, so unix:///csi/csi.sock is /csi/csi.sock and unix://tmp/csi.sock is
// the relative tmp/csi.sock) or "tcp://host:port".

export type Endpoint = { readonly kind: 'unix'; readonly path: string } | { readonly kind: 'tcp'; readonly address: string };

export function parseEndpoint(ep: string): Endpoint {
  const m = /^(unix|tcp):\/\/(.+)$/i.exec(ep);
  if (!m) throw new Error(`invalid endpoint: ${ep} (want unix:///path/to/csi.sock or tcp://host:port)`);
  return m[1]!.toLowerCase() === 'unix' ? { kind: 'unix', path: m[2]! } : { kind: 'tcp', address: m[2]! };
}

/** grpc-js bind address for an endpoint. */
export function grpcAddress(e: Endpoint): string {
  return e.kind === 'unix' ? `unix:${e.path}` : e.address;
}
