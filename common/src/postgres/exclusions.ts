export interface PgDataEntry {
  /** Relative to PGDATA, posix separators, no leading './'. */
  name: string;
  type: 'file' | 'dir' | 'link' | 'special';
  size: number;
  /** Unix seconds. */
  mtime: number;
  mode: number;
  uid: number;
  gid: number;
  linkTarget?: string;
}

export interface PgDataFilterOptions {
  pgVersion: number;
  /** A backup of a running cluster: WAL comes from the archive, not from pg_wal. */
  online: boolean;
  /** User --exclude: 'foo/' excludes the contents of foo, 'foo' excludes foo itself (and its contents). */
  exclude?: string[];
  /** When known, only the tablespace directory PG_<major>_<catalogVersion> is kept, else PG_<major>_*. */
  catalogVersion?: number;
}

export interface PgDataFilterResult {
  /** Sorted by name. */
  kept: PgDataEntry[];
  excluded: { name: string; reason: string }[];
}

/** Directories at the root of PGDATA whose contents PostgreSQL rebuilds or must not find; the directories are kept. */
const ROOT_DIRS_CONTENTS_EXCLUDED: readonly string[] = [
  'pg_dynshmem', 'pg_notify', 'pg_replslot', 'pg_serial', 'pg_snapshots', 'pg_stat_tmp', 'pg_subtrans',
];

/** Files at the root of PGDATA never copied, with the versions that know them (`from` inclusive, `before` exclusive). */
const ROOT_FILES_EXCLUDED: readonly { name: string; from?: number; before?: number; reason: string }[] = [
  { name: 'postmaster.pid', reason: 'runtime file of the running server' },
  { name: 'postmaster.opts', reason: 'runtime file of the running server' },
  { name: 'backup_label', reason: 'the backup stores the backup_label returned by the backup stop' },
  { name: 'backup_label.old', reason: 'left over from an earlier recovery' },
  { name: 'postgresql.auto.conf.tmp', reason: 'temporary file of ALTER SYSTEM' },
  { name: 'recovery.signal', from: 12, reason: 'recovery is configured on restore' },
  { name: 'standby.signal', from: 12, reason: 'recovery is configured on restore' },
  { name: 'recovery.conf', before: 12, reason: 'recovery is configured on restore' },
  { name: 'recovery.done', before: 12, reason: 'recovery is configured on restore' },
  { name: 'backup_manifest', from: 13, reason: 'manifest of a pg_basebackup, not of this backup' },
  { name: 'backup_manifest.tmp', from: 13, reason: 'manifest of a pg_basebackup, not of this backup' },
];

const WAL_DIR = 'pg_wal';
const WAL_ARCHIVE_STATUS_DIR = 'pg_wal/archive_status';

/** A database directory: base/<oid>, or pg_tblspc/<oid>/<PG_major_catalog>/<oid> inside a tablespace. */
const DB_DIR_RE = /^(?:base\/\d+|pg_tblspc\/\d+\/[^/]+\/\d+)$/;
/** A tablespace's top-level entries: pg_tblspc/<oid>/<name>. */
const TABLESPACE_TOP_RE = /^pg_tblspc\/\d+\/([^/]+)$/;
/** Files of a temporary relation: t<backend>_<relfilenode>[_fsm|_vm][.segment]. */
const TEMP_RELATION_RE = /^t\d+_\d+(?:_(?:fsm|vm))?(?:\.\d+)?$/;
/** Files of a relation: <relfilenode>[_fork][.segment]. */
const RELATION_RE = /^(\d+)(?:_(fsm|vm|init))?(?:\.\d+)?$/;
const RELCACHE_INIT_PREFIX = 'pg_internal.init';
const TEMP_PREFIX = 'pgsql_tmp';

function parentOf(name: string): string {
  const i = name.lastIndexOf('/');
  return i < 0 ? '' : name.slice(0, i);
}

function baseOf(name: string): string {
  return name.slice(name.lastIndexOf('/') + 1);
}

function isUnder(name: string, dir: string): boolean {
  return name.length > dir.length + 1 && name.startsWith(dir) && name[dir.length] === '/';
}

function userExcludeNormalize(exclude: string): string {
  return exclude.replace(/^(?:\.\/)+/, '').replace(/\/{2,}$/, '/');
}

/**
 * What of PGDATA a backup copies: everything PostgreSQL needs, without what it rebuilds, what it
 * must not find on start, and what the user excluded (pgBackRest's rules). Entries under
 * pg_tblspc/<oid>/ are a tablespace's contents (the lister follows the link).
 */
export function pgDataFilter(entries: Iterable<PgDataEntry>, opts: PgDataFilterOptions): PgDataFilterResult {
  const all = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  // A relation with an init fork is unlogged: PostgreSQL rebuilds its other forks from it on start.
  const unlogged = new Set<string>();
  for (const e of all) {
    const parent = parentOf(e.name);
    const m = RELATION_RE.exec(baseOf(e.name));
    if (e.type === 'file' && m?.[2] === 'init' && DB_DIR_RE.test(parent)) unlogged.add(`${parent}/${m[1]}`);
  }

  const rootFiles = new Map(ROOT_FILES_EXCLUDED
    .filter((f) => (f.from === undefined || opts.pgVersion >= f.from) && (f.before === undefined || opts.pgVersion < f.before))
    .map((f) => [f.name, f.reason]));
  const userExcludes = (opts.exclude ?? []).map(userExcludeNormalize).filter((x) => x !== '' && x !== '/');
  const userContents = userExcludes.filter((x) => x.endsWith('/')).map((x) => x.slice(0, -1));
  const userEntries = userExcludes.filter((x) => !x.endsWith('/'));
  const tablespaceDirPrefix = opts.catalogVersion === undefined ? `PG_${opts.pgVersion}_` : `PG_${opts.pgVersion}_${opts.catalogVersion}`;

  const reasonFor = (e: PgDataEntry): string | undefined => {
    const name = e.name;
    const parent = parentOf(name);
    const base = baseOf(name);
    if (name.split('/').some((part) => part.startsWith(TEMP_PREFIX))) return 'temporary files of a query';
    if (e.type === 'special') return 'special file (socket, fifo or device)';
    const userEntry = userEntries.find((x) => name === x || isUnder(name, x));
    if (userEntry !== undefined) return `excluded by the exclude option '${userEntry}'`;
    const userDir = userContents.find((x) => isUnder(name, x));
    if (userDir !== undefined) return `excluded by the exclude option '${userDir}/'`;
    const rootDir = ROOT_DIRS_CONTENTS_EXCLUDED.find((dir) => isUnder(name, dir));
    if (rootDir) return `contents of '${rootDir}' are rebuilt by PostgreSQL`;
    if (opts.online && isUnder(name, WAL_DIR) && !(name === WAL_ARCHIVE_STATUS_DIR && e.type === 'dir')) {
      return 'WAL of a running cluster comes from the archive';
    }
    if (parent === '' && e.type !== 'dir') {
      const reason = rootFiles.get(base);
      if (reason) return reason;
    }
    const tablespaceTop = TABLESPACE_TOP_RE.exec(name);
    if (tablespaceTop && !tablespaceTop[1]!.startsWith(tablespaceDirPrefix)) {
      return `not the tablespace directory of PostgreSQL ${opts.pgVersion}`;
    }
    if (e.type === 'file' && (DB_DIR_RE.test(parent) || parent === 'global') && base.startsWith(RELCACHE_INIT_PREFIX)) {
      return 'relation cache, rebuilt on start';
    }
    if (e.type === 'file' && DB_DIR_RE.test(parent)) {
      if (TEMP_RELATION_RE.test(base)) return 'temporary relation';
      const m = RELATION_RE.exec(base);
      if (m && m[2] !== 'init' && unlogged.has(`${parent}/${m[1]}`)) return 'unlogged relation (its init fork is kept)';
    }
    return undefined;
  };

  const kept: PgDataEntry[] = [];
  const excluded: { name: string; reason: string }[] = [];
  const excludedDirs = new Set<string>();
  const isInsideExcludedDir = (name: string): boolean => {
    for (let dir = parentOf(name); dir !== ''; dir = parentOf(dir)) if (excludedDirs.has(dir)) return true;
    return false;
  };
  for (const e of all) {
    // The rule that matched says more than the directory it is in.
    const reason = reasonFor(e) ?? (isInsideExcludedDir(e.name) ? 'inside an excluded directory' : undefined);
    if (reason === undefined) {
      kept.push(e);
      continue;
    }
    excluded.push({ name: e.name, reason });
    if (e.type === 'dir' || e.type === 'link') excludedDirs.add(e.name);
  }
  return { kept, excluded };
}
