import type { PgDataEntry } from '@openrds/common';
import { manifestContentBuild, manifestName, pgRelativeName } from './manifest-build';

const e = (name: string, type: PgDataEntry['type'], extra: Partial<PgDataEntry> = {}): PgDataEntry => ({
  name, type, size: type === 'file' ? 10 : 0, mtime: 1700000000, mode: type === 'dir' ? 0o700 : 0o600, uid: 1, gid: 1, ...extra,
});

describe('manifest names', () => {
  it('puts PGDATA under pg_data and keeps tablespace contents as their own target', () => {
    expect(manifestName('base/1/1259')).toBe('pg_data/base/1/1259');
    expect(manifestName('')).toBe('pg_data');
    expect(manifestName('pg_tblspc/16385')).toBe('pg_data/pg_tblspc/16385');
    expect(manifestName('pg_tblspc/16385/PG_15_202209061/5/16386')).toBe('pg_tblspc/16385/PG_15_202209061/5/16386');
    for (const n of ['base/1/1259', '', 'pg_tblspc/16385', 'pg_tblspc/16385/PG_15_202209061/5/16386']) {
      expect(pgRelativeName(manifestName(n))).toBe(n);
    }
  });
});

describe('manifestContentBuild', () => {
  it('makes a tablespace link a target with its name, and lists paths, links and files sorted', () => {
    const content = manifestContentBuild('/pg', 0o700, [
      e('global', 'dir'), e('global/pg_control', 'file', { size: 8192 }),
      e('pg_tblspc', 'dir'), e('pg_tblspc/16385', 'link', { linkTarget: '/ts1' }),
      e('pg_tblspc/16385/PG_15_202209061', 'dir'), e('pg_tblspc/16385/PG_15_202209061/5/16386', 'file'),
      e('base', 'dir'),
    ], new Map([[16385, 'ts1']]));
    expect(content.targets).toEqual([
      { name: 'pg_data', type: 'path', path: '/pg' },
      { name: 'pg_tblspc/16385', type: 'link', path: '/ts1', tablespaceId: 16385, tablespaceName: 'ts1' },
    ]);
    expect(content.paths.map((p) => p.name)).toEqual(['pg_data', 'pg_data/base', 'pg_data/global', 'pg_data/pg_tblspc', 'pg_tblspc/16385', 'pg_tblspc/16385/PG_15_202209061']);
    expect(content.links).toEqual([{ name: 'pg_data/pg_tblspc/16385', destination: '/ts1' }]);
    expect(content.files.map((f) => [f.name, f.size])).toEqual([['pg_data/global/pg_control', 8192], ['pg_tblspc/16385/PG_15_202209061/5/16386', 10]]);
  });
});
