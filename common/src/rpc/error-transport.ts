import * as grpc from '@grpc/grpc-js';
import {
  AccessDeniedError, ArchiveDuplicateError, FileMissingError, OpenrdsError, OptionInvalidError, OptionRequiredError,
  RepoUnavailableError, errorClasses, errorWrap,
} from '../error';

const MD_NAME = 'openrds-error-name';
const MD_CODE = 'openrds-error-code';
const MD_HINT = 'openrds-error-hint';

/** The gRPC status that fits an error best (clients rebuild our class from metadata anyway). */
function grpcStatusOf(err: OpenrdsError): grpc.status {
  if (err instanceof FileMissingError) return grpc.status.NOT_FOUND;
  if (err instanceof AccessDeniedError) return grpc.status.PERMISSION_DENIED;
  if (err instanceof OptionInvalidError || err instanceof OptionRequiredError) return grpc.status.INVALID_ARGUMENT;
  if (err instanceof ArchiveDuplicateError) return grpc.status.ALREADY_EXISTS;
  return grpc.status.UNKNOWN;
}

/** An error as a gRPC status carrying the class name, code and hint in its metadata. */
export function errorToGrpc(err: unknown): Partial<grpc.ServiceError> & { code: grpc.status; details: string; metadata: grpc.Metadata } {
  const e = errorWrap(err);
  const metadata = new grpc.Metadata();
  metadata.set(MD_NAME, e.name);
  metadata.set(MD_CODE, String(e.code));
  if (e.hint) metadata.set(MD_HINT, encodeURIComponent(e.hint));
  return { code: grpcStatusOf(e), details: e.message, metadata, message: e.message, name: e.name };
}

/**
 * Rebuilds the error the far side threw, with its class, message and hint. A transport failure
 * without our metadata (server down, deadline) becomes RepoUnavailableError naming the address.
 */
export function errorFromGrpc(err: unknown, address?: string): OpenrdsError {
  if (err instanceof OpenrdsError) return err;
  const se = err as Partial<grpc.ServiceError>;
  const md = se.metadata instanceof grpc.Metadata ? se.metadata : undefined;
  const name = md?.get(MD_NAME)[0];
  if (typeof name === 'string') {
    const Cls = errorClasses.get(name) ?? OpenrdsError;
    const hint = md?.get(MD_HINT)[0];
    return new Cls(se.details ?? se.message ?? 'unknown error', typeof hint === 'string' ? { hint: decodeURIComponent(hint) } : {});
  }
  if (se.code === grpc.status.UNAVAILABLE || se.code === grpc.status.DEADLINE_EXCEEDED) {
    const where = address ? ` at ${address}` : '';
    return new RepoUnavailableError(`unable to reach the repo-server${where}: ${se.details ?? se.message}`,
      { hint: 'is openrds-repo-server running, and are repo-host / repo-host-port right?', cause: err });
  }
  if (typeof se.code === 'number') {
    return new OpenrdsError(`${grpc.status[se.code] ?? se.code}: ${se.details ?? se.message}`, { cause: err });
  }
  return errorWrap(err);
}
