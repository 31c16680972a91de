import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FileEntry } from '@openrds/common';

/** Names of a directory whose lstat runs at once. */
const LSTAT_AT_ONCE = 64;

/**
 * Lists PGDATA recursively with lstat (the DB host's clock and filesystem), following the
 * tablespace links in pg_tblspc so that their contents are listed under `pg_tblspc/<oid>/`.
 */
export async function* pgDataList(pgPath: string, opts: { followTablespaces: boolean }): AsyncGenerator<FileEntry> {
  const stack: { abs: string; rel: string }[] = [{ abs: pgPath, rel: '' }];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    let names: string[];
    try {
      names = await fs.promises.readdir(dir.abs);
    } catch (err) {
      // A directory removed while listing (a dropped database) is not an error.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && dir.rel !== '') continue;
      throw err;
    }
    names.sort();
    // lstat of many names at once: one after the other, each would wait its turn on a libuv thread.
    let stats: (fs.Stats | undefined)[] = [];
    for (const [i, name] of names.entries()) {
      if (i % LSTAT_AT_ONCE === 0) {
        stats = await Promise.all(names.slice(i, i + LSTAT_AT_ONCE).map((n) => fs.promises.lstat(path.join(dir.abs, n)).catch((err: unknown) => {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
          throw err;
        })));
      }
      const st = stats[i % LSTAT_AT_ONCE];
      if (!st) continue;
      const abs = path.join(dir.abs, name);
      const rel = dir.rel === '' ? name : `${dir.rel}/${name}`;
      const entry: FileEntry = {
        name: rel, size: 0, mtime: Math.floor(st.mtimeMs / 1000), mode: st.mode & 0o7777,
        uid: st.uid, gid: st.gid, type: 'special',
      };
      if (st.isFile()) {
        entry.type = 'file';
        entry.size = st.size;
      } else if (st.isDirectory()) {
        entry.type = 'dir';
        stack.push({ abs, rel });
      } else if (st.isSymbolicLink()) {
        entry.type = 'link';
        entry.linkTarget = await fs.promises.readlink(abs);
        if (opts.followTablespaces && dir.rel === 'pg_tblspc') {
          stack.push({ abs: path.resolve(dir.abs, entry.linkTarget), rel });
        }
      }
      yield entry;
    }
  }
}
