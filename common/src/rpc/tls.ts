import * as fs from 'node:fs';
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Config } from '../config';
import { ConfigError, FileMissingError, FileReadError } from '../error';

/** Reads a PEM file named by an option, saying which option when it cannot. */
export function tlsFileRead(file: string, option: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new FileMissingError(`${option} '${file}' does not exist`, { hint: `check ${option}`, cause: err });
    throw new FileReadError(`unable to read ${option} '${file}': ${(err as Error).message}`,
      { hint: code === 'EACCES' ? 'run as the user that owns the file' : undefined, cause: err });
  }
}

/**
 * Reads a private key, refusing one that group or others may read: a key others can read is a
 * key others may already have.
 */
export function tlsKeyFileRead(file: string, option: string): Buffer {
  let mode: number;
  try {
    mode = fs.statSync(file).mode;
  } catch {
    return tlsFileRead(file, option);
  }
  if ((mode & 0o077) !== 0) {
    throw new ConfigError(`${option} '${file}' is readable or writable by group or others (mode ${(mode & 0o777).toString(8).padStart(4, '0')})`,
      { hint: `chmod 600 '${file}' (owned by the user that runs this program)` });
  }
  return tlsFileRead(file, option);
}

/** True when the client options ask for TLS (any of repo-host-cert-file, -key-file, -ca-file). */
export function tlsClientEnabled(config: Config): boolean {
  return ['repo-host-cert-file', 'repo-host-key-file', 'repo-host-ca-file'].some((o) => config.strOpt(o) !== undefined);
}

/**
 * Credentials to dial the repo-server: TLS with the client certificate when repo-host-*-file are
 * set (a CA alone: TLS without a client certificate, enough for server-ping), plain otherwise.
 */
export function tlsClientCredentials(config: Config): grpc.ChannelCredentials {
  if (!tlsClientEnabled(config)) return grpc.credentials.createInsecure();
  const certFile = config.strOpt('repo-host-cert-file');
  const keyFile = config.strOpt('repo-host-key-file');
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError(`repo-host-cert-file and repo-host-key-file must be set together`,
      { hint: `set both (${certFile === undefined ? 'repo-host-cert-file' : 'repo-host-key-file'} is missing)` });
  }
  const caFile = config.strOpt('repo-host-ca-file');
  const ca = caFile === undefined ? null : tlsFileRead(caFile, 'repo-host-ca-file');
  const key = keyFile === undefined ? null : tlsKeyFileRead(keyFile, 'repo-host-key-file');
  const cert = certFile === undefined ? null : tlsFileRead(certFile, 'repo-host-cert-file');
  return grpc.credentials.createSsl(ca, key, cert);
}

/**
 * What is wrong with this client's own certificate, when the repo-server refused it: missing,
 * expired, not yet valid. Undefined when it looks fine from here (then the CA is the suspect).
 */
export function tlsClientCertProblem(config: Config, now = new Date()): string | undefined {
  const certFile = config.strOpt('repo-host-cert-file');
  if (certFile === undefined) return 'no client certificate is configured (repo-host-cert-file)';
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(fs.readFileSync(certFile));
  } catch (err) {
    return `repo-host-cert-file '${certFile}' is not a readable certificate: ${(err as Error).message}`;
  }
  const cn = tlsSubjectCn(cert.subject) ?? cert.subject;
  if (new Date(cert.validTo).getTime() < now.getTime()) return `the client certificate '${certFile}' (CN '${cn}') expired on ${cert.validTo}`;
  if (new Date(cert.validFrom).getTime() > now.getTime()) return `the client certificate '${certFile}' (CN '${cn}') is not valid before ${cert.validFrom}`;
  return undefined;
}

/** The CN of a certificate's subject (Node's multi-line subject form), or undefined. */
export function tlsSubjectCn(subject: string | undefined): string | undefined {
  return subject === undefined ? undefined : /(?:^|\n)CN=([^\n]+)/.exec(subject)?.[1];
}
