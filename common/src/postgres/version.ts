import { PgVersionUnsupportedError } from '../error';

/**
 * What openrds knows of each supported PostgreSQL major, from PostgreSQL's headers:
 * PG_CONTROL_VERSION (pg_control.h), CATALOG_VERSION_NO of the release (catversion.h) and
 * XLOG_PAGE_MAGIC (xlog_internal.h). Keep this table data: a new major is one row.
 */
export interface PgVersionInfo {
  major: number;
  controlVersion: number;
  catalogVersion: number;
  walMagic: number;
  /** Offset of checkPointCopy in ControlFileData (prevCheckPoint was removed in 11). */
  checkPointCopyOffset: number;
}

export const PG_VERSIONS: readonly PgVersionInfo[] = [
  { major: 10, controlVersion: 1002, catalogVersion: 201707211, walMagic: 0xd097, checkPointCopyOffset: 48 },
  { major: 11, controlVersion: 1100, catalogVersion: 201809051, walMagic: 0xd098, checkPointCopyOffset: 40 },
  { major: 12, controlVersion: 1201, catalogVersion: 201909212, walMagic: 0xd101, checkPointCopyOffset: 40 },
  { major: 13, controlVersion: 1300, catalogVersion: 202007201, walMagic: 0xd106, checkPointCopyOffset: 40 },
  { major: 14, controlVersion: 1300, catalogVersion: 202107181, walMagic: 0xd10d, checkPointCopyOffset: 40 },
  { major: 15, controlVersion: 1300, catalogVersion: 202209061, walMagic: 0xd110, checkPointCopyOffset: 40 },
  { major: 16, controlVersion: 1300, catalogVersion: 202307071, walMagic: 0xd113, checkPointCopyOffset: 40 },
  { major: 17, controlVersion: 1700, catalogVersion: 202406281, walMagic: 0xd116, checkPointCopyOffset: 40 },
  { major: 18, controlVersion: 1800, catalogVersion: 202506291, walMagic: 0xd118, checkPointCopyOffset: 40 },
];

const SUPPORTED = `supported versions are ${PG_VERSIONS[0]!.major} to ${PG_VERSIONS[PG_VERSIONS.length - 1]!.major}`;

export function pgVersionInfo(major: number): PgVersionInfo {
  const v = PG_VERSIONS.find((x) => x.major === major);
  if (!v) throw new PgVersionUnsupportedError(`PostgreSQL ${major} is not supported`, { hint: SUPPORTED });
  return v;
}

/**
 * The major of a cluster from pg_control's (control version, catalog version). An exact release
 * catalog version wins; otherwise a catalog version between two releases sharing the control
 * version belongs to the older one (a minor release never changes it, a development build of the
 * next major does, and the next major changes the control version or is caught by the range).
 */
export function pgVersionFromControl(controlVersion: number, catalogVersion: number): number {
  const candidates = PG_VERSIONS.filter((v) => v.controlVersion === controlVersion);
  if (candidates.length === 0) {
    throw new PgVersionUnsupportedError(`unexpected pg_control version ${controlVersion} (catalog version ${catalogVersion})`,
      { hint: `is this a PostgreSQL release openrds supports? ${SUPPORTED}` });
  }
  const exact = candidates.find((v) => v.catalogVersion === catalogVersion);
  if (exact) return exact.major;
  const below = candidates.filter((v) => v.catalogVersion <= catalogVersion);
  if (below.length > 0) return below[below.length - 1]!.major;
  throw new PgVersionUnsupportedError(`unexpected catalog version ${catalogVersion} for pg_control version ${controlVersion}`,
    { hint: SUPPORTED });
}

/** The major whose WAL carries this page magic. */
export function pgVersionFromWalMagic(magic: number): number {
  const v = PG_VERSIONS.find((x) => x.walMagic === magic);
  if (!v) throw new PgVersionUnsupportedError(`unexpected WAL page magic 0x${magic.toString(16).toUpperCase()}`, { hint: SUPPORTED });
  return v.major;
}
