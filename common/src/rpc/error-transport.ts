import * as grpc from '@grpc/grpc-js';
import {
  AccessDeniedError, AgentUnavailableError, ArchiveDuplicateError, ArchiveMismatchError, ArchiveTimeoutError,
  AssertError, BackupSetInvalidError, ChecksumError, CommandInvalidError, DbMismatchError, FileExistsError,
  FileMissingError, InternalError, LockAcquireError, OpenrdsError, OptionInvalidError, OptionRequiredError,
  PathNotEmptyError, PgRunningError, PgVersionUnsupportedError, RepoUnavailableError, StanzaExistsError,
  StanzaMissingError, StopError, VerifyError, errorClasses, errorWrap,
} from '../error';
import { logRedactText } from '../log';

const MD_NAME = 'openrds-error-name';
const MD_CODE = 'openrds-error-code';
const MD_HINT = 'openrds-error-hint';

/**
 * The gRPC status that fits each error, for generic gRPC tooling; our clients rebuild the class
 * from the metadata whatever the status. First match wins, so subclasses come first.
 */
const GRPC_STATUS: readonly [typeof OpenrdsError, grpc.status][] = [
  [FileMissingError, grpc.status.NOT_FOUND],
  [StanzaMissingError, grpc.status.NOT_FOUND],
  [BackupSetInvalidError, grpc.status.NOT_FOUND],
  [FileExistsError, grpc.status.ALREADY_EXISTS],
  [StanzaExistsError, grpc.status.ALREADY_EXISTS],
  [ArchiveDuplicateError, grpc.status.ALREADY_EXISTS],
  [AccessDeniedError, grpc.status.PERMISSION_DENIED],
  [OptionInvalidError, grpc.status.INVALID_ARGUMENT],
  [OptionRequiredError, grpc.status.INVALID_ARGUMENT],
  [CommandInvalidError, grpc.status.INVALID_ARGUMENT],
  [PgRunningError, grpc.status.FAILED_PRECONDITION],
  [PathNotEmptyError, grpc.status.FAILED_PRECONDITION],
  [StopError, grpc.status.FAILED_PRECONDITION],
  [ArchiveMismatchError, grpc.status.FAILED_PRECONDITION],
  [DbMismatchError, grpc.status.FAILED_PRECONDITION],
  [PgVersionUnsupportedError, grpc.status.FAILED_PRECONDITION],
  [LockAcquireError, grpc.status.ABORTED],
  [ArchiveTimeoutError, grpc.status.DEADLINE_EXCEEDED],
  [AgentUnavailableError, grpc.status.UNAVAILABLE],
  [RepoUnavailableError, grpc.status.UNAVAILABLE],
  [ChecksumError, grpc.status.DATA_LOSS],
  [VerifyError, grpc.status.DATA_LOSS],
  [InternalError, grpc.status.INTERNAL],
  [AssertError, grpc.status.INTERNAL],
];

/** The gRPC status that fits an error best. */
export function errorGrpcStatus(err: OpenrdsError): grpc.status {
  return GRPC_STATUS.find(([cls]) => err instanceof cls)?.[1] ?? grpc.status.UNKNOWN;
}

/** An error as a gRPC status carrying the class name, code and hint in its metadata; secrets redacted. */
export function errorToGrpc(err: unknown): Partial<grpc.ServiceError> & { code: grpc.status; details: string; metadata: grpc.Metadata } {
  const e = errorWrap(err);
  const d = errorToDetail(e);
  const metadata = new grpc.Metadata();
  metadata.set(MD_NAME, d.name);
  metadata.set(MD_CODE, String(d.code));
  // Metadata values must be printable ASCII; the message travels in grpc-message, which grpc-js encodes.
  if (d.hint) metadata.set(MD_HINT, encodeURIComponent(d.hint));
  return { code: errorGrpcStatus(e), details: d.message, metadata, message: d.message, name: d.name };
}

/** An error class this side does not know (the far side is newer): keeps its name and exit code. */
export class RemoteError extends OpenrdsError {
  constructor(readonly remoteName: string, private readonly remoteCode: number, message: string, opts: { hint?: string } = {}) {
    super(message, opts);
    this.name = remoteName;
  }

  override get code(): number {
    return this.remoteCode;
  }
}

function metadataString(md: grpc.Metadata | undefined, key: string): string | undefined {
  const v = md?.get(key)[0];
  return typeof v === 'string' ? v : undefined;
}

function hintDecode(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  try { return decodeURIComponent(raw); } catch { return raw; }
}

/** The error of that class name (RemoteError when this side does not know it), with its message and hint. */
function errorRebuild(name: string, code: number, message: string, hint: string | undefined): OpenrdsError {
  const opts = hint === undefined ? {} : { hint };
  const Cls = errorClasses.get(name);
  if (Cls) return new Cls(message, opts);
  return new RemoteError(name, Number.isInteger(code) && code > 0 ? code : OpenrdsError.code, message, opts);
}

/** An error as an in-band ErrorDetail (an answer on a stream that goes on); secrets redacted. */
export function errorToDetail(err: unknown): { name: string; code: number; message: string; hint: string } {
  const e = errorWrap(err);
  return { name: e.name, code: e.code, message: logRedactText(e.message), hint: e.hint ? logRedactText(e.hint) : '' };
}

/** The error an in-band ErrorDetail describes, with its class, message and hint. */
export function errorFromDetail(d: { name: string; code: number; message: string; hint: string }): OpenrdsError {
  return errorRebuild(d.name, d.code, d.message, d.hint === '' ? undefined : d.hint);
}

/**
 * Rebuilds the error the far side threw, with its class, message and hint. A transport failure
 * without our metadata (server down, deadline) becomes RepoUnavailableError naming the address.
 */
export function errorFromGrpc(err: unknown, address?: string): OpenrdsError {
  if (err instanceof OpenrdsError) return err;
  const se = err as Partial<grpc.ServiceError> | undefined;
  const md = se?.metadata instanceof grpc.Metadata ? se.metadata : undefined;
  const name = metadataString(md, MD_NAME);
  const message = se?.details ?? se?.message ?? 'unknown error';
  if (name !== undefined) return errorRebuild(name, Number(metadataString(md, MD_CODE)), message, hintDecode(metadataString(md, MD_HINT)));
  const where = address ? ` at ${address}` : '';
  if (se?.code === grpc.status.UNAVAILABLE) {
    return new RepoUnavailableError(`unable to reach the repo-server${where}: ${message}`,
      { hint: 'is openrds-repo-server running, and are repo-host / repo-host-port right?', cause: err });
  }
  if (se?.code === grpc.status.DEADLINE_EXCEEDED) {
    return new RepoUnavailableError(`the repo-server${where} did not answer in time: ${message}`,
      { hint: 'is openrds-repo-server running and reachable? a slow repo may need a larger io-timeout or protocol-timeout', cause: err });
  }
  if (typeof se?.code === 'number') {
    return new OpenrdsError(`${grpc.status[se.code] ?? se.code}: ${message}`, { cause: err });
  }
  return errorWrap(err);
}
