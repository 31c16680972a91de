import { pgDataFilter, type PgDataEntry } from './exclusions';
import { pgSql, sqlQuote } from './sql';

const e = (name: string, type: PgDataEntry['type'] = 'file'): PgDataEntry => ({ name, type, size: 1, mtime: 1, mode: 0o600, uid: 1, gid: 1 });

function filter(names: PgDataEntry[], opts: Partial<Parameters<typeof pgDataFilter>[1]> = {}) {
  const r = pgDataFilter(names, { pgVersion: 15, online: true, ...opts });
  return { kept: r.kept.map((x) => x.name), excluded: Object.fromEntries(r.excluded.map((x) => [x.name, x.reason])) };
}

describe('pgDataFilter', () => {
  it('keeps runtime directories but not their contents', () => {
    const r = filter([e('pg_stat_tmp', 'dir'), e('pg_stat_tmp/global.stat'), e('pg_replslot', 'dir'), e('pg_replslot/s1', 'dir'), e('pg_replslot/s1/state'),
      e('pg_xact', 'dir'), e('pg_xact/0000')]);
    expect(r.kept).toEqual(['pg_replslot', 'pg_stat_tmp', 'pg_xact', 'pg_xact/0000']);
  });

  it('skips WAL when online, keeping pg_wal and archive_status, and copies it when offline', () => {
    const entries = [e('pg_wal', 'dir'), e('pg_wal/000000010000000000000001'), e('pg_wal/archive_status', 'dir'), e('pg_wal/archive_status/000000010000000000000001.done')];
    expect(filter(entries).kept).toEqual(['pg_wal', 'pg_wal/archive_status']);
    expect(filter(entries, { online: false }).kept).toHaveLength(4);
  });

  it('skips root runtime files by version', () => {
    const entries = [e('postmaster.pid'), e('postmaster.opts'), e('backup_label'), e('recovery.signal'), e('recovery.conf'), e('backup_manifest'), e('PG_VERSION')];
    expect(filter(entries).kept).toEqual(['PG_VERSION', 'recovery.conf']);
    expect(filter(entries, { pgVersion: 11 }).kept).toEqual(['PG_VERSION', 'backup_manifest', 'recovery.signal']);
    // Only at the root: a database directory file of the same name is data.
    expect(filter([e('base/1/backup_label')]).kept).toEqual(['base/1/backup_label']);
  });

  it('skips temp files, temp relations and the relation cache, in tablespaces too', () => {
    const r = filter([e('base/5/pgsql_tmp', 'dir'), e('base/5/pgsql_tmp/pgsql_tmp123.0'), e('base/5/t3_16384'), e('base/5/t3_16384_fsm'),
      e('base/5/pg_internal.init'), e('base/5/16384'), e('pg_tblspc/16385/PG_15_202209061/5/t2_99'), e('pg_tblspc/16385/PG_15_202209061/5/99')]);
    expect(r.kept).toEqual(['base/5/16384', 'pg_tblspc/16385/PG_15_202209061/5/99']);
  });

  it('keeps only the init fork of unlogged relations', () => {
    const r = filter([e('base/5/16390'), e('base/5/16390.1'), e('base/5/16390_fsm'), e('base/5/16390_vm'), e('base/5/16390_init'), e('base/5/16391')]);
    expect(r.kept).toEqual(['base/5/16390_init', 'base/5/16391']);
    expect(r.excluded['base/5/16390.1']).toContain('unlogged');
  });

  it('skips special files and honours user excludes', () => {
    const r = filter([e('sock', 'special'), e('log', 'dir'), e('log/postgresql.log'), e('keep.conf'), e('drop.conf')], { exclude: ['log/', 'drop.conf'] });
    expect(r.kept).toEqual(['keep.conf', 'log']);
  });
});

describe('pgSql', () => {
  it('uses the non-exclusive backup API of each version', () => {
    expect(pgSql(15).backupStart('x', true)).toContain("pg_backup_start('x', true)");
    expect(pgSql(15).backupStop).toContain('pg_backup_stop(false)');
    expect(pgSql(14).backupStart('x', false)).toContain("pg_start_backup('x', false, false)");
    expect(pgSql(10).backupStop).toContain('pg_stop_backup(false, false)');
  });

  it('quotes labels', () => {
    expect(sqlQuote("it's")).toBe("'it''s'");
    expect(pgSql(16).createRestorePoint("a'b")).toContain("'a''b'");
  });
});
