import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FileEntry } from '@openrds/common';

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
    for (const name of names) {
      const abs = path.join(dir.abs, name);
      const rel = dir.rel === '' ? name : `${dir.rel}/${name}`;
      let st: fs.Stats;
      try {
        st = await fs.promises.lstat(abs);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
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
