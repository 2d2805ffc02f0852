// Tells when one name in a directory may have changed, from inotify events
// alone (fs.watch): no timer runs while the directory stays, so an idle
// driver costs nothing here. If the directory itself goes (removed, or moved
// away), the watch is dead with it: the path is then looked at every
// `retryMs` until a directory is there again, which is watched anew.

import { statSync, watch, type FSWatcher } from 'node:fs';
import type { FileId } from './plugin-info.js';

export interface DirWatchOptions {
  readonly dir: string;
  /** The entry whose changes matter. */
  readonly name: string;
  /** Something may have happened to `name`; also called when the directory was found again (the entry is then new or absent). */
  readonly onChange: () => void;
  /** The directory went, or could not be watched; the watch is retried. */
  readonly onLost: (err: Error) => void;
  readonly retryMs: number;
}

export class DirWatch {
  private watcher: FSWatcher | null = null;
  private watched: FileId | null = null;
  private retry: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly o: DirWatchOptions) {}

  /** Starts watching; throws if the directory cannot be watched now. */
  start(): void {
    this.watchNow();
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    this.watcher = null;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
  }

  private watchNow(): void {
    const id = statSync(this.o.dir);
    if (!id.isDirectory()) throw Object.assign(new Error(`${this.o.dir} is not a directory`), { code: 'ENOTDIR' });
    const w = watch(this.o.dir, { persistent: false }, (_event, filename) => this.onEvent(filename));
    w.on('error', (e) => this.lose(e));
    this.watcher = w;
    this.watched = { dev: id.dev, ino: id.ino };
  }

  private onEvent(filename: string | null): void {
    if (this.closed) return;
    // Events for other names are rare there (other plugins' sockets); each
    // is a cheap moment to notice that the directory itself was replaced.
    if (!this.sameDir()) {
      this.lose(new Error(`${this.o.dir} was removed or replaced`));
      return;
    }
    if (filename === null || filename === this.o.name) this.o.onChange();
  }

  private sameDir(): boolean {
    try {
      const now = statSync(this.o.dir);
      return now.isDirectory() && now.dev === this.watched?.dev && now.ino === this.watched.ino;
    } catch {
      return false;
    }
  }

  private lose(err: Error): void {
    if (this.closed || this.retry) return;
    this.watcher?.close();
    this.watcher = null;
    this.o.onLost(err);
    this.again(0);
  }

  private again(delayMs: number): void {
    this.retry = setTimeout(() => {
      this.retry = null;
      if (this.closed) return;
      try {
        this.watchNow();
      } catch {
        this.again(this.o.retryMs);
        return;
      }
      this.o.onChange();
    }, delayMs);
  }
}
