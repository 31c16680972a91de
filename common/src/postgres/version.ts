import { PgVersionUnsupportedError } from '../error';

/**
 * Where the fields openrds reads sit in ControlFileData (src/include/catalog/pg_control.h),
 * little-endian, x86-64/arm64 alignment. system_identifier (0), pg_control_version (8),
 * catalog_version_no (12), state (16) and checkPoint (32) never moved; the rest did:
 * - pg10: still has prevCheckPoint, so checkPointCopy starts at 48;
 * - pg11: prevCheckPoint removed (checkPointCopy at 40), CheckPoint still has a 32-bit nextXid and
 *   epoch, and there is no max_wal_senders: everything after it is 8 bytes earlier;
 * - pg12: CheckPoint.nextFullXid (64-bit) and max_wal_senders put it back at the pg10 offsets;
 *   13 (float4ByVal removed) and 17 (CheckPoint.wal_level fills padding) keep them;
 * - pg18: default_char_signedness after data_checksum_version moves the CRC by 4.
 * Checked against initdb'd clusters of every version (common/test-fixtures/pg).
 */
export interface PgControlLayout {
  id: 'pg10' | 'pg11' | 'pg12' | 'pg18';
  /** checkPointCopy: redo LSN at +0, ThisTimeLineID at +8. */
  checkPointCopy: number;
  /** floatFormat, the double 1234567.0. */
  floatFormat: number;
  blcksz: number;
  xlogBlcksz: number;
  xlogSegSize: number;
  dataChecksumVersion: number;
  /** The CRC-32C, of every byte before it. */
  crc: number;
}

export type PgControlLayoutId = PgControlLayout['id'];

export const PG_CONTROL_LAYOUTS: Readonly<Record<PgControlLayoutId, PgControlLayout>> = {
  pg10: { id: 'pg10', checkPointCopy: 48, floatFormat: 208, blcksz: 216, xlogBlcksz: 224, xlogSegSize: 228, dataChecksumVersion: 252, crc: 288 },
  pg11: { id: 'pg11', checkPointCopy: 40, floatFormat: 200, blcksz: 208, xlogBlcksz: 216, xlogSegSize: 220, dataChecksumVersion: 244, crc: 280 },
  pg12: { id: 'pg12', checkPointCopy: 40, floatFormat: 208, blcksz: 216, xlogBlcksz: 224, xlogSegSize: 228, dataChecksumVersion: 252, crc: 288 },
  pg18: { id: 'pg18', checkPointCopy: 40, floatFormat: 208, blcksz: 216, xlogBlcksz: 224, xlogSegSize: 228, dataChecksumVersion: 252, crc: 292 },
};

/**
 * What openrds knows of each supported PostgreSQL major, from PostgreSQL's headers of each
 * REL_xx_STABLE branch: PG_CONTROL_VERSION (catalog/pg_control.h), CATALOG_VERSION_NO of the
 * release (catalog/catversion.h) and XLOG_PAGE_MAGIC (access/xlog_internal.h). A new major is one
 * row here (and a layout above if pg_control changed).
 */
export interface PgVersionInfo {
  major: number;
  controlVersion: number;
  /** CATALOG_VERSION_NO of the release; minor releases never change it. */
  catalogVersion: number;
  /**
   * Catalog versions above this one (the previous major's release) and up to catalogVersion are
   * this major: its betas and release candidates carry earlier numbers than the release.
   */
  catalogVersionAfter: number;
  walMagic: number;
  controlLayout: PgControlLayoutId;
}

export const PG_VERSIONS: readonly PgVersionInfo[] = [
  // 201608131 is the catalog version of 9.6, the release before 10.
  { major: 10, controlVersion: 1002, catalogVersion: 201707211, catalogVersionAfter: 201608131, walMagic: 0xd097, controlLayout: 'pg10' },
  { major: 11, controlVersion: 1100, catalogVersion: 201809051, catalogVersionAfter: 201707211, walMagic: 0xd098, controlLayout: 'pg11' },
  { major: 12, controlVersion: 1201, catalogVersion: 201909212, catalogVersionAfter: 201809051, walMagic: 0xd101, controlLayout: 'pg12' },
  { major: 13, controlVersion: 1300, catalogVersion: 202007201, catalogVersionAfter: 201909212, walMagic: 0xd106, controlLayout: 'pg12' },
  { major: 14, controlVersion: 1300, catalogVersion: 202107181, catalogVersionAfter: 202007201, walMagic: 0xd10d, controlLayout: 'pg12' },
  { major: 15, controlVersion: 1300, catalogVersion: 202209061, catalogVersionAfter: 202107181, walMagic: 0xd110, controlLayout: 'pg12' },
  { major: 16, controlVersion: 1300, catalogVersion: 202307071, catalogVersionAfter: 202209061, walMagic: 0xd113, controlLayout: 'pg12' },
  { major: 17, controlVersion: 1700, catalogVersion: 202406281, catalogVersionAfter: 202307071, walMagic: 0xd116, controlLayout: 'pg12' },
  { major: 18, controlVersion: 1800, catalogVersion: 202506291, catalogVersionAfter: 202406281, walMagic: 0xd118, controlLayout: 'pg18' },
];

export const PG_VERSION_MIN = PG_VERSIONS[0]!.major;
export const PG_VERSION_MAX = PG_VERSIONS[PG_VERSIONS.length - 1]!.major;
const SUPPORTED_HINT = `openrds supports PostgreSQL ${PG_VERSION_MIN} to ${PG_VERSION_MAX}`;

/** What openrds knows of a PostgreSQL major; throws PgVersionUnsupportedError for others. */
export function pgVersionInfo(major: number): PgVersionInfo {
  const info = PG_VERSIONS.find((v) => v.major === major);
  if (!info) throw new PgVersionUnsupportedError(`PostgreSQL version '${major}' is not supported`, { hint: SUPPORTED_HINT });
  return info;
}

/** The pg_control layout of a PostgreSQL major. */
export function pgControlLayout(major: number): PgControlLayout {
  return PG_CONTROL_LAYOUTS[pgVersionInfo(major).controlLayout];
}

/**
 * The major (e.g. 15) of a cluster from pg_control's control and catalog versions. Majors 13 to
 * 16 share control version 1300, so the catalog version decides, by range.
 */
export function pgVersionFromControl(controlVersion: number, catalogVersion: number): number {
  const sameControl = PG_VERSIONS.filter((v) => v.controlVersion === controlVersion);
  const match = sameControl.find((v) => catalogVersion > v.catalogVersionAfter && catalogVersion <= v.catalogVersion);
  if (match) return match.major;
  if (sameControl.length === 0) {
    throw new PgVersionUnsupportedError(
      `unexpected pg_control version '${controlVersion}' (catalog version '${catalogVersion}')`,
      { hint: `${SUPPORTED_HINT}: is this cluster of a newer or older major, or is pg_control damaged?` });
  }
  const newest = sameControl[sameControl.length - 1]!;
  const isNewer = catalogVersion > newest.catalogVersion;
  throw new PgVersionUnsupportedError(
    `unexpected catalog version '${catalogVersion}' for pg_control version '${controlVersion}'`,
    { hint: isNewer
      ? `${SUPPORTED_HINT}: is this a development build newer than PostgreSQL ${newest.major}?`
      : `${SUPPORTED_HINT}: is this a development build older than PostgreSQL ${sameControl[0]!.major}?` });
}

/** The major whose WAL pages carry this XLOG_PAGE_MAGIC; throws PgVersionUnsupportedError. */
export function pgVersionFromWalMagic(magic: number): number {
  const info = PG_VERSIONS.find((v) => v.walMagic === magic);
  if (!info) {
    throw new PgVersionUnsupportedError(`unexpected WAL page magic '0x${magic.toString(16).toUpperCase().padStart(4, '0')}'`,
      { hint: `${SUPPORTED_HINT}: is this WAL from another major, or not WAL at all?` });
  }
  return info.major;
}
