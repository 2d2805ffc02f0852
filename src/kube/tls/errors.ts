// The error the kubernetes.io/tls data rules throw, and the internal one the PKCS#12 reader uses
// until it reaches that boundary. Messages never carry key material: only tags, lengths, OIDs,
// versions and file paths.

export type TlsSecretErrorReason =
  /** The data key is neither tls.key nor tls.crt. */
  | 'unsupported-key'
  /** A PKCS#8 key of a type other than RSA/ECDSA (Ed25519, X25519). */
  | 'unsupported-private-key-type'
  /** The input is not PEM with the requested part, and PFX decoding failed. */
  | 'pkcs12';

export class TlsSecretError extends Error {
  readonly code = 'ERR_TLS_SECRET_DATA';
  constructor(
    message: string,
    readonly reason: TlsSecretErrorReason,
    /** Upstream's GetCertPart error text, without the "failed to get cert data from file" prefix. */
    readonly detail: string = message,
  ) {
    super(message);
    this.name = 'TlsSecretError';
  }
}

/** A PFX that golang.org/x/crypto/pkcs12 would reject; the message is the one upstream reports. */
export class Pkcs12Error extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Pkcs12Error';
  }
}
