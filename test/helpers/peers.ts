// Asks a peer build script (test/peers/*/build.sh) whether its peer is built.
// `--check` exits 4 when it is not built yet, and 6 when the last build found
// the peer refused by its registry; then it prints that refusal on stderr.

import { join } from 'node:path';
import { ROOT, execFileP } from './harness.js';

export interface PeerCheck {
  readonly built: boolean;
  /** The script's output when built. */
  readonly stdout: string;
  /** Why not, when not built. */
  readonly why: string;
}

/** `script` relative to the repository; `what` names the peer in the reason. */
export async function checkPeer(script: string, what: string): Promise<PeerCheck> {
  try {
    return { built: true, stdout: (await execFileP('bash', [join(ROOT, script), '--check'])).stdout, why: '' };
  } catch (e) {
    const err = e as { code?: number; stderr?: string };
    const refusal = err.stderr?.trim().split('\n').pop();
    if (err.code === 6 && refusal) return { built: false, stdout: '', why: `${what} not built: ${refusal}` };
    return { built: false, stdout: '', why: `${what} not built: run ${script} (see the script for what it needs)` };
  }
}
