import { pgDataFilter, type PgDataEntry, type PgDataFilterOptions } from './exclusions';

function entry(name: string, type: PgDataEntry['type'] = 'file'): PgDataEntry {
  return { name, type, size: 1, mtime: 1, mode: type === 'dir' ? 0o700 : 0o600, uid: 1, gid: 1 };
}

function filter(entries: PgDataEntry[], opts: Partial<PgDataFilterOptions> = {}): { kept: string[]; excluded: Record<string, string> } {
  const result = pgDataFilter(entries, { pgVersion: 15, online: true, ...opts });
  return { kept: result.kept.map((e) => e.name), excluded: Object.fromEntries(result.excluded.map((e) => [e.name, e.reason])) };
}

describe('pgDataFilter', () => {
  it('skips pgsql_tmp files and directories at any level', () => {
    const r = filter([
      entry('base', 'dir'), entry('base/5', 'dir'), entry('base/5/pgsql_tmp', 'dir'), entry('base/5/pgsql_tmp/pgsql_tmp123.0'),
      entry('pgsql_tmp9.1'), entry('base/5/16384'), entry('base/5/my_pgsql_tmp'),
      entry('pg_tblspc/16385/PG_15_202209061/pgsql_tmp/x'),
    ]);
    expect(r.kept).toEqual(['base', 'base/5', 'base/5/16384', 'base/5/my_pgsql_tmp']);
    expect(r.excluded['base/5/pgsql_tmp/pgsql_tmp123.0']).toBe('temporary files of a query');
    expect(r.excluded['pg_tblspc/16385/PG_15_202209061/pgsql_tmp/x']).toBe('temporary files of a query');
  });

  it('keeps the root runtime directories but not their contents, at any depth', () => {
    const r = filter([
      entry('pg_stat_tmp', 'dir'), entry('pg_stat_tmp/global.stat'), entry('pg_replslot', 'dir'), entry('pg_replslot/s1', 'dir'),
      entry('pg_replslot/s1/state'), entry('pg_dynshmem', 'dir'), entry('pg_dynshmem/mmap.1'), entry('pg_notify/0000'),
      entry('pg_serial/0000'), entry('pg_snapshots/00000003-1'), entry('pg_subtrans/0000'),
      entry('pg_xact', 'dir'), entry('pg_xact/0000'), entry('base/5/pg_stat_tmp', 'dir'), entry('base/5/pg_stat_tmp/x'),
    ]);
    expect(r.kept).toEqual(['base/5/pg_stat_tmp', 'base/5/pg_stat_tmp/x', 'pg_dynshmem', 'pg_replslot', 'pg_stat_tmp', 'pg_xact', 'pg_xact/0000']);
    expect(r.excluded['pg_replslot/s1']).toBe("contents of 'pg_replslot' are rebuilt by PostgreSQL");
    expect(Object.keys(r.excluded)).toHaveLength(8);
  });

  it('skips WAL when online, keeping pg_wal and an empty archive_status, and copies it all when offline', () => {
    const entries = [
      entry('pg_wal', 'dir'), entry('pg_wal/000000010000000000000001'), entry('pg_wal/00000002.history'),
      entry('pg_wal/archive_status', 'dir'), entry('pg_wal/archive_status/000000010000000000000001.done'),
    ];
    const online = filter(entries);
    expect(online.kept).toEqual(['pg_wal', 'pg_wal/archive_status']);
    expect(online.excluded['pg_wal/000000010000000000000001']).toBe('WAL of a running cluster comes from the archive');
    expect(filter(entries, { online: false }).kept).toEqual(entries.map((e) => e.name).sort());
  });

  it('skips root runtime files, by version', () => {
    const entries = ['postmaster.pid', 'postmaster.opts', 'backup_label', 'backup_label.old', 'postgresql.auto.conf.tmp', 'recovery.signal',
      'standby.signal', 'recovery.conf', 'recovery.done', 'backup_manifest', 'backup_manifest.tmp', 'PG_VERSION', 'postgresql.auto.conf'].map((n) => entry(n));
    expect(filter(entries, { pgVersion: 15 }).kept).toEqual(['PG_VERSION', 'postgresql.auto.conf', 'recovery.conf', 'recovery.done']);
    expect(filter(entries, { pgVersion: 13 }).kept).toEqual(['PG_VERSION', 'postgresql.auto.conf', 'recovery.conf', 'recovery.done']);
    expect(filter(entries, { pgVersion: 12 }).kept).toEqual(['PG_VERSION', 'backup_manifest', 'backup_manifest.tmp', 'postgresql.auto.conf',
      'recovery.conf', 'recovery.done']);
    expect(filter(entries, { pgVersion: 11 }).kept).toEqual(['PG_VERSION', 'backup_manifest', 'backup_manifest.tmp', 'postgresql.auto.conf',
      'recovery.signal', 'standby.signal']);
  });

  it('skips root runtime files only at the root, and only files', () => {
    expect(filter([entry('base/1/backup_label'), entry('conf/postmaster.pid'), entry('backup_label', 'dir')]).kept)
      .toEqual(['backup_label', 'base/1/backup_label', 'conf/postmaster.pid']);
  });

  it('skips the relation cache in database directories and global', () => {
    const r = filter([entry('base/5/pg_internal.init'), entry('base/5/pg_internal.init.1234'), entry('global/pg_internal.init'),
      entry('pg_tblspc/16385/PG_15_202209061/5/pg_internal.init'), entry('pg_internal.init'), entry('base/pg_internal.init')]);
    expect(r.kept).toEqual(['base/pg_internal.init', 'pg_internal.init']);
    expect(r.excluded['base/5/pg_internal.init.1234']).toBe('relation cache, rebuilt on start');
  });

  it('skips temporary relations in database directories, of tablespaces too', () => {
    const r = filter([entry('base/5/t3_16384'), entry('base/5/t3_16384_fsm'), entry('base/5/t3_16384_vm'), entry('base/5/t3_16384.1'),
      entry('pg_tblspc/16385/PG_15_202209061/5/t2_99'), entry('base/5/16384'), entry('global/t3_16384'), entry('base/5/t3_x'),
      entry('pg_tblspc/16385/PG_15_202209061/5/99')]);
    expect(r.kept).toEqual(['base/5/16384', 'base/5/t3_x', 'global/t3_16384', 'pg_tblspc/16385/PG_15_202209061/5/99']);
    expect(r.excluded['base/5/t3_16384.1']).toBe('temporary relation');
  });

  it('keeps only the init fork of unlogged relations, with every other fork and segment skipped', () => {
    const r = filter([
      entry('base/5/16390'), entry('base/5/16390.1'), entry('base/5/16390.2'), entry('base/5/16390_fsm'), entry('base/5/16390_vm'),
      entry('base/5/16390_init'), entry('base/5/16391'), entry('base/5/16391_fsm'), entry('base/6/16390'),
      entry('pg_tblspc/16385/PG_15_202209061/5/200'), entry('pg_tblspc/16385/PG_15_202209061/5/200_init'),
    ]);
    expect(r.kept).toEqual(['base/5/16390_init', 'base/5/16391', 'base/5/16391_fsm', 'base/6/16390', 'pg_tblspc/16385/PG_15_202209061/5/200_init']);
    expect(r.excluded['base/5/16390.2']).toBe('unlogged relation (its init fork is kept)');
    expect(r.excluded['pg_tblspc/16385/PG_15_202209061/5/200']).toBe('unlogged relation (its init fork is kept)');
  });

  it('keeps only the tablespace directory of the running major', () => {
    const entries = [entry('pg_tblspc', 'dir'), entry('pg_tblspc/16385', 'link'), entry('pg_tblspc/16385/PG_15_202209061', 'dir'),
      entry('pg_tblspc/16385/PG_15_202209061/5/100'), entry('pg_tblspc/16385/PG_14_202107181', 'dir'), entry('pg_tblspc/16385/PG_14_202107181/5/100')];
    const r = filter(entries);
    expect(r.kept).toEqual(['pg_tblspc', 'pg_tblspc/16385', 'pg_tblspc/16385/PG_15_202209061', 'pg_tblspc/16385/PG_15_202209061/5/100']);
    expect(r.excluded['pg_tblspc/16385/PG_14_202107181']).toBe('not the tablespace directory of PostgreSQL 15');
    expect(r.excluded['pg_tblspc/16385/PG_14_202107181/5/100']).toBe('inside an excluded directory');
    expect(filter(entries, { catalogVersion: 202209062 }).kept).toEqual(['pg_tblspc', 'pg_tblspc/16385']);
  });

  it('skips special files', () => {
    const r = filter([entry('.s.PGSQL.5432', 'special'), entry('fifo', 'special'), entry('PG_VERSION')]);
    expect(r.kept).toEqual(['PG_VERSION']);
    expect(r.excluded['fifo']).toBe('special file (socket, fifo or device)');
  });

  it("honours user excludes: 'dir/' drops the contents, 'name' the entry itself", () => {
    const r = filter([entry('log', 'dir'), entry('log/postgresql.log'), entry('log/old', 'dir'), entry('log/old/a.log'),
      entry('keep.conf'), entry('drop.conf'), entry('drop.conf.d', 'dir'), entry('junk', 'dir'), entry('junk/x'), entry('logs/x')],
    { exclude: ['./log/', 'drop.conf', 'junk'] });
    expect(r.kept).toEqual(['drop.conf.d', 'keep.conf', 'log', 'logs/x']);
    expect(r.excluded['log/old/a.log']).toBe("excluded by the exclude option 'log/'");
    expect(r.excluded['junk/x']).toBe("excluded by the exclude option 'junk'");
  });

  it('returns what it keeps sorted by name, whatever order the lister used', () => {
    const r = filter([entry('b'), entry('a/c'), entry('a', 'dir'), entry('a-b')]);
    expect(r.kept).toEqual(['a', 'a-b', 'a/c', 'b']);
  });
});
