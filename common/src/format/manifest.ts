import { FormatError } from '../error';
import type { Storage } from '../storage/storage';
import { infoFileLoad, infoFileSave } from './info-file';


export interface ManifestFile {
  name: string;                // 'pg_data/base/1/1259' or 'pg_tblspc/<oid>/...'
  size: number;
  /** The content's checksum: sha256 as hex, or `blake3:<hex>` (see ChecksumType); the field keeps its first name. */
  sha256: string;
  repoSize: number;
  mtime: number;               // unix seconds
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
    /** Encrypted repository: the data key of the files this backup stored (their headers name it too). */
    cipherKey?: string;
  };
  db: {
    id: number; systemId: string; pgVersion: number; catalogVersion: number; controlVersion: number;
    walSegmentSize: number; pageSize: number; checksumVersion: number;
  };
  /** checksumType: the type of the checksums this backup computed (files it references may have another: each value says its own). */
  options: { compressType: 'none' | 'zst' | 'lz4' | 'gz'; compressLevel: number; processMax: number; checksumPage: boolean; checksumType?: 'sha256' | 'blake3' };
  databases?: { name: string; oid: number }[];
  targets: ManifestTarget[];
  paths: ManifestPath[];
  links: ManifestLink[];
  files: ManifestFile[];
}

export const MANIFEST_NAME = 'backup.manifest';

/** A field check: 'string', 'number' (finite), 'integer' (safe, >= 0), 'boolean', or the allowed values. */
type FieldKind = 'string' | 'number' | 'integer' | 'boolean' | readonly (string | number)[];

function fieldIs(value: unknown, kind: FieldKind): boolean {
  if (Array.isArray(kind)) return kind.includes(value as string | number);
  switch (kind) {
    case 'string': return typeof value === 'string';
    case 'number': return typeof value === 'number' && Number.isFinite(value);
    case 'integer': return Number.isSafeInteger(value) && (value as number) >= 0;
    case 'boolean': return typeof value === 'boolean';
  }
  return false;
}

function fieldBad(field: string, value: unknown): FormatError {
  const what = value === undefined ? 'is missing' : `has the invalid value ${JSON.stringify(value)?.slice(0, 80) ?? String(value)}`;
  return new FormatError(`invalid manifest: field '${field}' ${what}`);
}

function objectCheck(value: unknown, field: string | (() => string)): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw fieldBad(typeof field === 'string' ? field : field(), value);
  return value as Record<string, unknown>;
}

/** A field spec as a list, made once per spec: a manifest checks it for every one of its files. */
const specLists = new WeakMap<Record<string, FieldKind>, { name: string; isOptional: boolean; kind: FieldKind }[]>();
function specList(spec: Record<string, FieldKind>): { name: string; isOptional: boolean; kind: FieldKind }[] {
  let list = specLists.get(spec);
  if (!list) {
    list = Object.entries(spec).map(([specName, kind]) => ({ name: specName.replace(/\?$/, ''), isOptional: specName.endsWith('?'), kind }));
    specLists.set(spec, list);
  }
  return list;
}

/**
 * Checks the fields of one object: required ones always, optional ones (name ending in '?') when
 * present. An element of a list names itself only when it is bad (`field[index]`).
 */
function fieldsCheck(value: unknown, field: string, spec: Record<string, FieldKind>, index?: number): void {
  const named = (): string => (index === undefined ? field : `${field}[${index}]`);
  const obj = objectCheck(value, named);
  for (const { name, isOptional, kind } of specList(spec)) {
    const v = obj[name];
    if (v === undefined && isOptional) continue;
    if (!fieldIs(v, kind)) throw fieldBad(`${named()}.${name}`, v);
  }
}

function arrayCheck(value: unknown, field: string): unknown[] {
  if (!Array.isArray(value)) throw fieldBad(field, value);
  return value;
}

/** Names strictly ascending in code unit order (the order of `<`), which manifestFileFind relies on. */
function sortedCheck(list: { name: string }[], field: string): void {
  for (let i = 1; i < list.length; i++) {
    if (!(list[i - 1]!.name < list[i]!.name)) {
      throw new FormatError(`invalid manifest: '${field}' is not sorted by name or has a duplicate at '${field}[${i}]' ('${list[i]!.name}')`);
    }
  }
}

const BACKUP_FIELDS: Record<string, FieldKind> = {
  label: 'string', type: ['full', 'diff', 'incr'], 'prior?': 'string', timestampStart: 'number', 'timestampCopyStart?': 'number',
  'delta?': 'boolean', timestampStop: 'number', lsnStart: 'string', lsnStop: 'string', walStart: 'string', walStop: 'string',
  timeline: 'integer', online: 'boolean', archiveId: 'string', 'backupSize?': 'integer', 'repoSize?': 'integer',
  'cipherKey?': 'string',
};
const DB_FIELDS: Record<string, FieldKind> = {
  id: 'integer', systemId: 'string', pgVersion: 'integer', catalogVersion: 'integer', controlVersion: 'integer',
  walSegmentSize: 'integer', pageSize: 'integer', checksumVersion: 'integer',
};
const OPTIONS_FIELDS: Record<string, FieldKind> = {
  compressType: ['none', 'zst', 'lz4', 'gz'], compressLevel: 'integer', processMax: 'integer', checksumPage: 'boolean',
  'checksumType?': ['sha256', 'blake3'],
};
const OWNER_FIELDS: Record<string, FieldKind> = { 'user?': 'string', 'group?': 'string' };
const TARGET_FIELDS: Record<string, FieldKind> = {
  name: 'string', type: ['path', 'link'], path: 'string', 'tablespaceId?': 'integer', 'tablespaceName?': 'string',
};
const PATH_FIELDS: Record<string, FieldKind> = { name: 'string', mode: 'integer', ...OWNER_FIELDS };
const LINK_FIELDS: Record<string, FieldKind> = { name: 'string', destination: 'string', ...OWNER_FIELDS };
const FILE_FIELDS: Record<string, FieldKind> = {
  name: 'string', size: 'integer', sha256: 'string', repoSize: 'integer', mtime: 'number', mode: 'integer', ...OWNER_FIELDS,
  'reference?': 'string',
};
const DATABASE_FIELDS: Record<string, FieldKind> = { name: 'string', oid: 'integer' };

/** Structural check of a manifest read from outside; FormatError names the first bad field. */
export function manifestValidate(m: unknown): Manifest {
  const doc = objectCheck(m, 'manifest');
  if (doc.version !== 1) throw fieldBad('version', doc.version);
  fieldsCheck(doc.backup, 'backup', BACKUP_FIELDS);
  fieldsCheck(doc.db, 'db', DB_FIELDS);
  fieldsCheck(doc.options, 'options', OPTIONS_FIELDS);
  if (doc.databases !== undefined) arrayCheck(doc.databases, 'databases').forEach((d, i) => fieldsCheck(d, 'databases', DATABASE_FIELDS, i));
  arrayCheck(doc.targets, 'targets').forEach((t, i) => fieldsCheck(t, 'targets', TARGET_FIELDS, i));
  arrayCheck(doc.paths, 'paths').forEach((p, i) => fieldsCheck(p, 'paths', PATH_FIELDS, i));
  arrayCheck(doc.links, 'links').forEach((l, i) => fieldsCheck(l, 'links', LINK_FIELDS, i));
  arrayCheck(doc.files, 'files').forEach((f, i) => {
    fieldsCheck(f, 'files', FILE_FIELDS, i);
    const pageError = (f as ManifestFile).pageChecksumError;
    if (pageError !== undefined) {
      const pages = objectCheck(pageError, `files[${i}].pageChecksumError`).pages;
      if (!Array.isArray(pages) || !pages.every((p) => fieldIs(p, 'integer'))) throw fieldBad(`files[${i}].pageChecksumError.pages`, pages);
    }
  });
  const manifest = doc as unknown as Manifest;
  if (!manifest.targets.some((t) => t.name === 'pg_data')) throw new FormatError("invalid manifest: no target 'pg_data'");
  sortedCheck(manifest.files, 'files');
  return manifest;
}

/** The file of a manifest by name: a binary search, since files are kept sorted by name. */
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

/** Validates and saves a manifest (with its .copy and checksum). */
export async function manifestSave(storage: Storage, key: string, m: Manifest): Promise<void> {
  // Checked before writing: a manifest that would not load back must never replace a good one.
  manifestValidate(m);
  await infoFileSave(storage, key, m);
}

/** Loads a manifest (falling back to its .copy) and validates it. */
export async function manifestLoad(storage: Storage, key: string): Promise<Manifest> {
  return manifestValidate(await infoFileLoad<unknown>(storage, key));
}
