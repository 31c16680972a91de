import type { FileEntry__Output as FileEntry, ManifestFile, ManifestLink, ManifestPath, ManifestTarget, PgDataEntry } from '@openrds/common';

const TBLSPC_RE = /^pg_tblspc\/(\d+)(\/.*)?$/;

/**
 * Manifest name of a PGDATA-relative name: tablespace contents keep their `pg_tblspc/<oid>/...`
 * name (they are their own target), everything else lives under `pg_data/`.
 */
export function manifestName(pgRelative: string): string {
  const m = TBLSPC_RE.exec(pgRelative);
  if (m && m[2]) return pgRelative;
  return pgRelative === '' ? 'pg_data' : `pg_data/${pgRelative}`;
}

/** PGDATA-relative name of a manifest name (the inverse of manifestName). */
export function pgRelativeName(name: string): string {
  if (name === 'pg_data') return '';
  if (name.startsWith('pg_data/')) return name.slice('pg_data/'.length);
  return name;
}

export function fileEntryToPgData(e: FileEntry): PgDataEntry {
  return {
    name: e.name, type: e.type as PgDataEntry['type'], size: e.size, mtime: e.mtime, mode: e.mode, uid: e.uid, gid: e.gid,
    ...(e.linkTarget ? { linkTarget: e.linkTarget } : {}),
  };
}

export interface ManifestContent {
  targets: ManifestTarget[];
  paths: ManifestPath[];
  links: ManifestLink[];
  files: ManifestFile[];
}

/**
 * The targets, paths, links and (not yet copied) files of a manifest, from the filtered PGDATA
 * listing. Tablespace links become targets of their own.
 */
export function manifestContentBuild(pgPath: string, rootMode: number, kept: PgDataEntry[], tablespaces: Map<number, string>): ManifestContent {
  const targets: ManifestTarget[] = [{ name: 'pg_data', type: 'path', path: pgPath }];
  const paths: ManifestPath[] = [{ name: 'pg_data', mode: rootMode }];
  const links: ManifestLink[] = [];
  const files: ManifestFile[] = [];
  for (const e of kept) {
    const name = manifestName(e.name);
    if (e.type === 'dir') {
      paths.push({ name, mode: e.mode });
    } else if (e.type === 'link') {
      const m = TBLSPC_RE.exec(e.name);
      if (m && !m[2]) {
        const oid = Number(m[1]);
        const tablespaceName = tablespaces.get(oid);
        targets.push({ name: e.name, type: 'link', path: e.linkTarget ?? '', tablespaceId: oid, ...(tablespaceName ? { tablespaceName } : {}) });
        paths.push({ name: e.name, mode: 0o700 });
      }
      links.push({ name, destination: e.linkTarget ?? '' });
    } else if (e.type === 'file') {
      files.push({ name, size: e.size, sha256: '', repoSize: 0, mtime: e.mtime, mode: e.mode });
    }
  }
  const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  return { targets, paths: paths.sort(byName), links: links.sort(byName), files: files.sort(byName) };
}
