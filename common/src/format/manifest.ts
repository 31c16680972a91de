import { FormatError } from '../error';
import type { Storage } from '../storage/storage';
import { infoFileLoad, infoFileSave } from './info-file';

export interface ManifestFile {
  name: string;                // 'pg_data/base/1/1259' or 'pg_tblspc/<oid>/...'
  size: number;
  sha256: string;
  repoSize: number;
  mtime: number;
  mode: number;
  user?: string;
  group?: string;
  /** Label of the backup that holds the bytes, when not this one. */
  reference?: string;
  pageChecksumError?: { pages: number[] };
}

export interface ManifestPath { name: string; mode: number; user?: string; group?: string }
export interface ManifestLink { name: string; destination: string; user?: string; group?: string }
export interface ManifestTarget {
  name: string;                // 'pg_data' | 'pg_tblspc/16385'
  type: 'path' | 'link';
  path: string;
  tablespaceId?: number;
  tablespaceName?: string;
}

export interface Manifest {
  version: 1;
  backup: {
    label: string;
    type: 'full' | 'diff' | 'incr';
    prior?: string;
    timestampStart: number;    // ms, database host clock
    timestampCopyStart?: number;
    /** Files were compared by checksum, not size + mtime (an anomaly, a timeline switch or --delta). */
    delta?: boolean;
    timestampStop: number;
    lsnStart: string;
    lsnStop: string;
    walStart: string;
    walStop: string;
    timeline: number;
    online: boolean;
    archiveId: string;
    backupSize?: number;
    repoSize?: number;
  };
  db: {
    id: number; systemId: string; pgVersion: number; catalogVersion: number; controlVersion: number;
    walSegmentSize: number; pageSize: number; checksumVersion: number;
  };
  options: { compressType: 'none' | 'zst'; compressLevel: number; processMax: number; checksumPage: boolean };
  databases?: { name: string; oid: number }[];
  targets: ManifestTarget[];
  paths: ManifestPath[];
  links: ManifestLink[];
  files: ManifestFile[];
}

export const MANIFEST_NAME = 'backup.manifest';

function need(cond: boolean, field: string): void {
  if (!cond) throw new FormatError(`invalid manifest: field '${field}' is missing or has the wrong type`);
}

/** Structural check of a loaded manifest. */
export function manifestValidate(m: unknown): Manifest {
  const x = m as Manifest;
  need(typeof x === 'object' && x !== null, 'manifest');
  need(x.version === 1, 'version');
  need(typeof x.backup === 'object' && typeof x.backup.label === 'string', 'backup.label');
  need(['full', 'diff', 'incr'].includes(x.backup.type), 'backup.type');
  need(typeof x.backup.lsnStart === 'string' && typeof x.backup.lsnStop === 'string', 'backup.lsn');
  need(typeof x.db === 'object' && typeof x.db.systemId === 'string' && typeof x.db.pgVersion === 'number', 'db');
  need(typeof x.options === 'object' && ['none', 'zst'].includes(x.options.compressType), 'options.compressType');
  for (const k of ['targets', 'paths', 'links', 'files'] as const) need(Array.isArray(x[k]), k);
  for (const [i, f] of x.files.entries()) {
    need(typeof f.name === 'string' && typeof f.size === 'number' && typeof f.sha256 === 'string' && typeof f.mode === 'number', `files[${i}]`);
  }
  return x;
}

/** The file of a manifest by name (files are kept sorted by name). */
export function manifestFileFind(m: Manifest, name: string): ManifestFile | undefined {
  let lo = 0, hi = m.files.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const n = m.files[mid]!.name;
    if (n === name) return m.files[mid];
    if (n < name) lo = mid + 1; else hi = mid - 1;
  }
  return undefined;
}

export async function manifestSave(storage: Storage, key: string, m: Manifest): Promise<void> {
  await infoFileSave(storage, key, m);
}

export async function manifestLoad(storage: Storage, key: string): Promise<Manifest> {
  return manifestValidate(await infoFileLoad<Manifest>(storage, key));
}
