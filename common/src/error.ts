/**
 * Errors with stable numeric codes (the process exit code), a lowercase message that names the
 * thing, and an optional hint the user can act on. The same class is rebuilt on the far side of
 * a gRPC call (see rpc/error-transport.ts).
 */
export interface OpenrdsErrorOptions {
  hint?: string;
  cause?: unknown;
}

export class OpenrdsError extends Error {
  /** Stable code; subclasses override. Also the exit code of a command that fails with it. */
  static readonly code: number = 1;
  readonly hint: string | undefined;

  constructor(message: string, opts: OpenrdsErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.hint = opts.hint;
    this.name = new.target.name;
  }

  get code(): number {
    return (this.constructor as typeof OpenrdsError).code;
  }

  /** Message plus the HINT line, as printed to a user. */
  toDisplay(): string {
    return this.hint ? `${this.message}\nHINT: ${this.hint}` : this.message;
  }
}

// One class per condition. Codes are stable: never renumber, only add.
export class AssertError extends OpenrdsError { static override readonly code = 25; }
export class ConfigError extends OpenrdsError { static override readonly code = 28; }
export class OptionInvalidError extends OpenrdsError { static override readonly code = 31; }
export class OptionRequiredError extends OpenrdsError { static override readonly code = 37; }
export class FileMissingError extends OpenrdsError { static override readonly code = 55; }
export class FileExistsError extends OpenrdsError { static override readonly code = 56; }
export class FileReadError extends OpenrdsError { static override readonly code = 57; }
export class FileWriteError extends OpenrdsError { static override readonly code = 58; }
export class FormatError extends OpenrdsError { static override readonly code = 29; }
export class ChecksumError extends OpenrdsError { static override readonly code = 53; }
export class PgControlInvalidError extends OpenrdsError { static override readonly code = 54; }
export class PgVersionUnsupportedError extends OpenrdsError { static override readonly code = 60; }
export class DbConnectError extends OpenrdsError { static override readonly code = 32; }
export class DbQueryError extends OpenrdsError { static override readonly code = 39; }
export class DbMismatchError extends OpenrdsError { static override readonly code = 51; }
export class PgRunningError extends OpenrdsError { static override readonly code = 38; }
export class PathNotEmptyError extends OpenrdsError { static override readonly code = 40; }
export class StanzaMissingError extends OpenrdsError { static override readonly code = 100; }
export class StanzaExistsError extends OpenrdsError { static override readonly code = 101; }
export class BackupSetInvalidError extends OpenrdsError { static override readonly code = 99; }
export class ArchiveMismatchError extends OpenrdsError { static override readonly code = 44; }
export class ArchiveDuplicateError extends OpenrdsError { static override readonly code = 45; }
export class ArchiveTimeoutError extends OpenrdsError { static override readonly code = 82; }
export class AgentUnavailableError extends OpenrdsError { static override readonly code = 103; }
export class RepoUnavailableError extends OpenrdsError { static override readonly code = 104; }
export class ProtocolError extends OpenrdsError { static override readonly code = 41; }
export class LockAcquireError extends OpenrdsError { static override readonly code = 50; }
export class AccessDeniedError extends OpenrdsError { static override readonly code = 72; }
export class CommandInvalidError extends OpenrdsError { static override readonly code = 27; }
export class RestoreTargetError extends OpenrdsError { static override readonly code = 105; }
export class StopError extends OpenrdsError { static override readonly code = 62; }
export class VerifyError extends OpenrdsError { static override readonly code = 106; }
/** Authentication of encrypted data failed, a key is missing or wrong, or a passphrase does not open the key file. */
export class CryptoError extends OpenrdsError { static override readonly code = 107; }
/** An ArchivePush names a staged part (archive-push-stream) the repo-server does not hold (restarted, expired): the agent pushes the whole file. */
export class ArchiveStageMissingError extends OpenrdsError { static override readonly code = 108; }
export class InternalError extends OpenrdsError { static override readonly code = 122; }

/** Every error class, by name: used to rebuild an error received over the wire. */
export const errorClasses: ReadonlyMap<string, typeof OpenrdsError> = new Map(
  [
    OpenrdsError, AssertError, ConfigError, OptionInvalidError, OptionRequiredError, FileMissingError,
    FileExistsError, FileReadError, FileWriteError, FormatError, ChecksumError, PgControlInvalidError,
    PgVersionUnsupportedError, DbConnectError, DbQueryError, DbMismatchError, PgRunningError,
    PathNotEmptyError, StanzaMissingError, StanzaExistsError, BackupSetInvalidError, ArchiveMismatchError,
    ArchiveDuplicateError, ArchiveTimeoutError, AgentUnavailableError,
    RepoUnavailableError, ProtocolError, LockAcquireError, AccessDeniedError, CommandInvalidError,
    RestoreTargetError, StopError, VerifyError, CryptoError, ArchiveStageMissingError, InternalError,
  ].map((c) => [c.name, c]),
);

/** Wrap anything thrown into an OpenrdsError, keeping OpenrdsErrors as they are. */
export function errorWrap(err: unknown): OpenrdsError {
  if (err instanceof OpenrdsError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new InternalError(message, { cause: err });
}
