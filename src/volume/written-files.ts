// What a volume serves after a provider call that had a write window open:
// pure, so the rules are tested without mounts.
//
// A provider that returns its files (every provider with
// --driver-writes-secrets, the e2e provider, Vault, Azure) wrote nothing:
// the response is the whole new content, as always. A provider that wrote
// (the AWS provider by default) changed the directory in place: the new
// content is what was served, minus the names it removed or replaced, plus
// what it wrote; files it also returned win over both.

import type { ProviderFile } from '../provider/paths.js';
import { validateFiles } from '../provider/paths.js';
import type { WindowResult } from '../fuse/write-window.js';

export function filesAfterWindow(
  served: readonly ProviderFile[],
  window: WindowResult | null,
  returned: readonly ProviderFile[],
): { files: ProviderFile[]; error: string | null } {
  if (!window?.wrote) return { files: [...returned], error: null };
  const removed = new Set(window.removed);
  const written = new Set(window.files.map((f) => f.name));
  const out = new Map<string, ProviderFile>();
  for (const f of served) {
    const top = f.path.split('/')[0]!;
    if (!removed.has(top) && !written.has(top)) out.set(f.path, f);
  }
  for (const f of window.files) out.set(f.name, { path: f.name, mode: f.mode, contents: f.contents });
  for (const f of returned) out.set(f.path, f);
  const files = [...out.values()];
  return { files, error: validateFiles(files) };
}
