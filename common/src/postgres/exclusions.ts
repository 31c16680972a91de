export interface PgDataEntry {
  name: string;                // relative to PGDATA, posix separators
  type: 'file' | 'dir' | 'link' | 'special';
  size: number;
  mtime: number;
  mode: number;
  uid: number;
  gid: number;
  linkTarget?: string;
}

export interface PgDataFilterOptions {
  pgVersion: number;
  online: boolean;
  /** User excludes: 'foo/' excludes the contents of foo, 'foo' excludes foo itself. */
  exclude?: string[];
}

/** Directories at the root of PGDATA whose contents are never copied (the directory itself is). */
const ROOT_CONTENTS_EXCLUDED = ['pg_dynshmem', 'pg_notify', 'pg_replslot', 'pg_serial', 'pg_snapshots', 'pg_stat_tmp', 'pg_subtrans'];

/** Files at the root of PGDATA never copied, by the versions that have them. */
const ROOT_FILES_EXCLUDED: { name: string; from?: number; before?: number }[] = [
  { name: 'postmaster.pid' }, { name: 'postmaster.opts' }, { name: 'backup_label' }, { name: 'backup_label.old' },
  { name: 'postgresql.auto.conf.tmp' },
  { name: 'recovery.signal', from: 12 }, { name: 'standby.signal', from: 12 },
  { name: 'recovery.conf', before: 12 }, { name: 'recovery.done', before: 12 },
  { name: 'backup_manifest', from: 13 }, { name: 'backup_manifest.tmp', from: 13 },
];

/** A database directory: base/<oid> or pg_tblspc/<oid>/<PG_ver_cat>/<oid>. */
const DB_DIR_RE = /^(base\/\d+|pg_tblspc\/\d+\/[^/]+\/\d+)$/;
const TEMP_RELATION_RE = /^t\d+_\d+(_(fsm|vm|init))?(\.\d+)?$/;
const RELATION_RE = /^(\d+)(_(fsm|vm|init))?(\.\d+)?$/;

function parentOf(name: string): string {
  const i = name.lastIndexOf('/');
  return i < 0 ? '' : name.slice(0, i);
}

function baseOf(name: string): string {
  return name.slice(name.lastIndexOf('/') + 1);
}

/**
 * What of PGDATA a backup copies: everything PostgreSQL needs, without what it rebuilds or must
 * not find on start (pgBackRest's rules: temp files, runtime directories, WAL when online,
 * postmaster files, unlogged relations but their init fork, special files, user excludes).
 */
export function pgDataFilter(entries: Iterable<PgDataEntry>, opts: PgDataFilterOptions): {
  kept: PgDataEntry[]; excluded: { name: string; reason: string }[];
} {
  const all = [...entries];
  const excludedPrefixes: string[] = [];
  const excluded: { name: string; reason: string }[] = [];
  const kept: PgDataEntry[] = [];
  // Relations that have an init fork are unlogged: all their other forks are skipped.
  const unlogged = new Set<string>();
  for (const e of all) {
    const m = RELATION_RE.exec(baseOf(e.name));
    if (e.type === 'file' && m && m[3] === 'init' && DB_DIR_RE.test(parentOf(e.name))) unlogged.add(`${parentOf(e.name)}/${m[1]}`);
  }
  const rootFiles = new Set(ROOT_FILES_EXCLUDED
    .filter((f) => (f.from === undefined || opts.pgVersion >= f.from) && (f.before === undefined || opts.pgVersion < f.before))
    .map((f) => f.name));
  const userContents = (opts.exclude ?? []).filter((x) => x.endsWith('/')).map((x) => x.replace(/\/+$/, ''));
  const userEntries = new Set((opts.exclude ?? []).filter((x) => !x.endsWith('/')));

  const reasonFor = (e: PgDataEntry): string | undefined => {
    const name = e.name;
    const parent = parentOf(name);
    const base = baseOf(name);
    if (excludedPrefixes.some((p) => name.startsWith(`${p}/`))) return 'inside an excluded path';
    if (base.startsWith('pgsql_tmp')) return 'temporary files';
    if (e.type === 'special') return 'special file (socket, fifo or device)';
    if (userEntries.has(name)) return 'excluded by the exclude option';
    if (userContents.some((p) => parent === p || name.startsWith(`${p}/`))) return 'excluded by the exclude option';
    if (parent !== '' && ROOT_CONTENTS_EXCLUDED.includes(parent.split('/')[0]!) && !parent.includes('/')) return `contents of ${parent} are rebuilt by PostgreSQL`;
    if (opts.online && (parent === 'pg_wal' || parent.startsWith('pg_wal/')) && !(name === 'pg_wal/archive_status' && e.type === 'dir')) {
      return 'WAL comes from the archive';
    }
    if (parent === '' && e.type !== 'dir' && rootFiles.has(base)) return 'runtime file of PostgreSQL';
    if (DB_DIR_RE.test(parent) && e.type === 'file') {
      if (base.startsWith('pg_internal.init')) return 'relation cache, rebuilt on start';
      if (TEMP_RELATION_RE.test(base)) return 'temporary relation';
      const m = RELATION_RE.exec(base);
      if (m && m[3] !== 'init' && unlogged.has(`${parent}/${m[1]}`)) return 'unlogged relation (its init fork is kept)';
    }
    return undefined;
  };

  for (const e of all.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const reason = reasonFor(e);
    if (reason) {
      excluded.push({ name: e.name, reason });
      if (e.type === 'dir') excludedPrefixes.push(e.name);
    } else {
      kept.push(e);
    }
  }
  return { kept, excluded };
}
