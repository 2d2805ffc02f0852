// Canary values: unique, greppable, never a real secret.

import { randomBytes } from 'node:crypto';

export function canary(label: string): string {
  return `CANARY-${label}-${Math.random().toString(36).slice(2, 10)}${Date.now().toString(36)}`;
}

/** Exactly `size` bytes of ASCII: a canary, then random base64url characters. */
export function canaryBytes(size: number, label: string): Buffer {
  const text = `${canary(label)}-${randomBytes(size).toString('base64url')}`;
  return Buffer.from(text).subarray(0, size);
}
