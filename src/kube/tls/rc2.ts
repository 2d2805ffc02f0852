// RC2 (RFC 2268) CBC decryption, for PKCS#12's pbeWithSHAAnd40BitRC2-CBC, which legacy PFX files
// (OpenSSL's -legacy, Windows exports) use for their certificates. OpenSSL 3 only has RC2 in its
// legacy provider, which Node does not load, so it is implemented here. Key schedules are zeroed
// after use.

const PI_TABLE = Buffer.from(
  'd978f9c419ddb5ed28e9fd794aa0d89dc67e37832b76538e624c6488448bfba2179a59f587b34f1361456d8d09817d32' +
    'bd8f40eb86b77b0bf09521225c6b4e8254d66593ce60b21c7356c014a78cf1dc1275ca1f3bbee4d1423dd430a33cb626' +
    '6fbf0eda4669075727f21d9bbc944303f811c7f690ef3ee706c3d52fc8661ed708e8eade8052eef784aa72ac354d6a2a' +
    '961ad2715a1549744b9fd05e0418a4ecc2e0416e0f51cbcc2491af50a1f47039997c3a8523b8b47afc02365b25559731' +
    '2d5dfa98e38a92ae05df2910676cbac9d300e6cfe19ea82c6316013f58e289a90d38341bab33ffb0bb480c5fb9b1cd2e' +
    'c5f3db47e5a59c770aa62068fe7fc1ad',
  'hex',
);

/** RFC 2268 section 2: the 64 16-bit subkeys for `key` with `effectiveBits` effective key bits. */
function expandKey(key: Buffer, effectiveBits: number): Uint16Array {
  const l = Buffer.alloc(128);
  try {
    key.copy(l);
    const t = Math.min(key.length, 128);
    const t8 = Math.floor((effectiveBits + 7) / 8);
    const tm = 255 % (1 << (8 + effectiveBits - 8 * t8));
    for (let i = t; i < 128; i++) l[i] = PI_TABLE[((l[i - 1] ?? 0) + (l[i - t] ?? 0)) & 0xff] ?? 0;
    l[128 - t8] = PI_TABLE[(l[128 - t8] ?? 0) & tm] ?? 0;
    for (let i = 127 - t8; i >= 0; i--) l[i] = PI_TABLE[(l[i + 1] ?? 0) ^ (l[i + t8] ?? 0)] ?? 0;
    const k = new Uint16Array(64);
    for (let i = 0; i < 64; i++) k[i] = (l[2 * i] ?? 0) | ((l[2 * i + 1] ?? 0) << 8);
    return k;
  } finally {
    l.fill(0);
  }
}

const rotr = (x: number, n: number) => ((x >>> n) | (x << (16 - n))) & 0xffff;

function decryptBlock(k: Uint16Array, src: Buffer, dst: Buffer): void {
  const K = (i: number) => k[i] ?? 0;
  let r0 = src.readUInt16LE(0);
  let r1 = src.readUInt16LE(2);
  let r2 = src.readUInt16LE(4);
  let r3 = src.readUInt16LE(6);
  let j = 63;
  const reverseMix = (stop: number) => {
    while (j >= stop) {
      r3 = (rotr(r3, 5) - K(j) - (r2 & r1) - (~r2 & r0)) & 0xffff;
      j--;
      r2 = (rotr(r2, 3) - K(j) - (r1 & r0) - (~r1 & r3)) & 0xffff;
      j--;
      r1 = (rotr(r1, 2) - K(j) - (r0 & r3) - (~r0 & r2)) & 0xffff;
      j--;
      r0 = (rotr(r0, 1) - K(j) - (r3 & r2) - (~r3 & r1)) & 0xffff;
      j--;
    }
  };
  const reverseMash = () => {
    r3 = (r3 - K(r2 & 63)) & 0xffff;
    r2 = (r2 - K(r1 & 63)) & 0xffff;
    r1 = (r1 - K(r0 & 63)) & 0xffff;
    r0 = (r0 - K(r3 & 63)) & 0xffff;
  };
  reverseMix(44);
  reverseMash();
  reverseMix(20);
  reverseMash();
  reverseMix(0);
  dst.writeUInt16LE(r0, 0);
  dst.writeUInt16LE(r1, 2);
  dst.writeUInt16LE(r2, 4);
  dst.writeUInt16LE(r3, 6);
}

/**
 * RC2-CBC decryption of whole 8-byte blocks (a trailing partial block is left zero), without
 * padding removal: the caller checks the padding as upstream does.
 */
export function rc2CbcDecrypt(key: Buffer, effectiveBits: number, iv: Buffer, data: Buffer): Buffer {
  const k = expandKey(key, effectiveBits);
  try {
    const out = Buffer.alloc(data.length);
    let prev = iv;
    for (let off = 0; off + 8 <= data.length; off += 8) {
      const block = data.subarray(off, off + 8);
      const plain = out.subarray(off, off + 8);
      decryptBlock(k, block, plain);
      for (let i = 0; i < 8; i++) plain[i] = (plain[i] ?? 0) ^ (prev[i] ?? 0);
      prev = block;
    }
    return out;
  } finally {
    k.fill(0);
  }
}
