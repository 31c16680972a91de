import { CrlWatch, serialNormalize } from './crl';
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { AccessDeniedError, OptionInvalidError, errorToGrpc, log, optionFind } from '@openrds/common';

/**
 * Who may do what on a repo-server with mutual TLS, by the CN of the client certificate (which
 * the TLS layer has already verified against tls-server-ca-file):
 * - an agent CN serves the stanzas tls-server-auth lists for it (`*`: every stanza): it may open a
 *   session for them, move the files of their jobs, push and get their WAL;
 * - an admin CN (tls-server-admin) may run openrds-admin commands;
 * - Ping needs no certificate at all (a liveness check, as pgBackRest's server-ping).
 */
export interface TlsAuthRules {
  /** CN → the stanzas it may serve, or '*' for all. */
  readonly agents: ReadonlyMap<string, ReadonlySet<string> | '*'>;
  readonly admins: ReadonlySet<string>;
}

const CN = /^[^\s=,][^=,]*$/;

/** Parses tls-server-auth (`<cn>=<stanza>[,<stanza>...]` or `<cn>=*`) and tls-server-admin (`<cn>[,<cn>...]`). */
export function tlsAuthParse(auth: Record<string, string>, admins: readonly string[]): TlsAuthRules {
  const stanzaPattern = optionFind('stanza')!.pattern!;
  const agents = new Map<string, ReadonlySet<string> | '*'>();
  for (const [cn, value] of Object.entries(auth)) {
    if (!CN.test(cn)) throw new OptionInvalidError(`tls-server-auth: '${cn}' is not a certificate CN`, { hint: 'tls-server-auth=<cn>=<stanza>[,<stanza>...] or <cn>=*' });
    const stanzas = value.split(',').map((s) => s.trim());
    if (stanzas.length === 1 && stanzas[0] === '*') {
      agents.set(cn, '*');
      continue;
    }
    for (const s of stanzas) {
      if (s === '*') throw new OptionInvalidError(`tls-server-auth: '*' must stand alone for CN '${cn}'`, { hint: `tls-server-auth=${cn}=*` });
      if (!stanzaPattern.regex.test(s)) {
        throw new OptionInvalidError(`tls-server-auth: '${s}' (CN '${cn}') is not a stanza name`, { hint: `expected ${stanzaPattern.describe}` });
      }
    }
    agents.set(cn, new Set(stanzas));
  }
  const adminSet = new Set<string>();
  for (const cn of admins.flatMap((a) => a.split(',')).map((a) => a.trim())) {
    if (!CN.test(cn)) throw new OptionInvalidError(`tls-server-admin: '${cn}' is not a certificate CN`, { hint: 'tls-server-admin=<cn>[,<cn>...]' });
    adminSet.add(cn);
  }
  return { agents, admins: adminSet };
}

/** What a call needs, by its gRPC method path. */
export type MethodAccess = 'public' | 'admin' | 'agent';

const ACCESS: Readonly<Record<string, MethodAccess>> = {
  '/openrds.v1.Admin/Ping': 'public',
  '/openrds.v1.Admin/Run': 'admin',
  '/openrds.v1.AgentGateway/Session': 'agent',
  '/openrds.v1.AgentGateway/PutBackupFile': 'agent',
  '/openrds.v1.AgentGateway/GetBackupFile': 'agent',
  '/openrds.v1.AgentGateway/GetBackupFiles': 'agent',
  '/openrds.v1.AgentGateway/ArchivePush': 'agent',
  '/openrds.v1.AgentGateway/ArchiveGet': 'agent',
  '/openrds.v1.AgentGateway/ArchiveKey': 'agent',
  '/openrds.v1.AgentGateway/ArchiveStage': 'agent',
  '/openrds.v1.AgentGateway/ArchivePushes': 'agent',
};

/** Access a method needs; a method not listed here is refused (deny by default). */
export function tlsMethodAccess(method: string): MethodAccess | undefined {
  return ACCESS[method];
}

/** Why a call is refused, or undefined when it is allowed. `cn` undefined: no verified certificate. */
export function tlsAuthDeny(rules: TlsAuthRules, req: { method: string; cn: string | undefined; stanza?: string }): AccessDeniedError | undefined {
  const access = tlsMethodAccess(req.method);
  if (access === 'public') return undefined;
  if (access === undefined) return new AccessDeniedError(`method '${req.method}' is not served to clients`);
  if (req.cn === undefined) {
    return new AccessDeniedError(`the repo-server requires a client certificate signed by its CA: none was presented, or it did not verify (unknown CA, expired, not yet valid)`,
      { hint: 'set repo-host-cert-file and repo-host-key-file to a certificate issued by the CA of tls-server-ca-file (openrds-admin pki issue --cn=<name>)' });
  }
  if (access === 'admin') {
    if (rules.admins.has(req.cn)) return undefined;
    return new AccessDeniedError(`client certificate CN '${req.cn}' may not run admin commands`,
      { hint: `on the repo-server, add it to tls-server-admin (tls-server-admin=${req.cn}); agent certificates are not admin certificates` });
  }
  const stanzas = rules.agents.get(req.cn);
  if (stanzas === undefined) {
    return new AccessDeniedError(`client certificate CN '${req.cn}' is not an agent of this repo-server`,
      { hint: `on the repo-server, add tls-server-auth=${req.cn}=<stanza>[,<stanza>...]` });
  }
  if (req.stanza === undefined || stanzas === '*' || stanzas.has(req.stanza)) return undefined;
  return new AccessDeniedError(`client certificate CN '${req.cn}' is not authorized for stanza '${req.stanza}'`,
    { hint: `it serves ${[...stanzas].map((s) => `'${s}'`).join(', ')}; to add one, on the repo-server: tls-server-auth=${req.cn}=${[...stanzas, req.stanza].join(',')}` });
}

/** The call surface the checks read (server calls and intercepting calls both have it). */
export interface PeerCall { getAuthContext(): { sslPeerCertificate?: PeerCertificate } | null; getPeer(): string }

/** The CN of the verified client certificate of a call; grpc-js exposes a certificate only once it verified. */
export function tlsPeerCn(call: PeerCall): string | undefined {
  const cert = call.getAuthContext()?.sslPeerCertificate;
  if (!cert) return undefined;
  const cn = cert.subject?.CN;
  return typeof cn === 'string' ? cn : Array.isArray(cn) ? cn[0] : undefined;
}

/**
 * The per-call checks of a repo-server. Without TLS (loopback only) every call is allowed: the
 * listener itself is the boundary.
 */
export class TlsAuthorizer {
  constructor(private readonly rules: TlsAuthRules | undefined, private readonly crl?: CrlWatch) {}

  /** A revoked client certificate (tls-server-crl-file) may do nothing but ping. */
  private revokedDeny(call: PeerCall, method: string): AccessDeniedError | undefined {
    if (!this.crl || tlsMethodAccess(method) === 'public') return undefined;
    const serial = call.getAuthContext()?.sslPeerCertificate?.serialNumber;
    if (!serial || !this.crl.revoked(serial)) return undefined;
    return new AccessDeniedError(`client certificate CN '${tlsPeerCn(call) ?? '?'}' (serial ${serialNormalize(serial)}) is revoked`,
      { hint: 'issue a new certificate for this client (openrds-admin pki issue) if it should connect again' });
  }

  get isEnabled(): boolean { return this.rules !== undefined; }

  /** Throws (and logs) AccessDeniedError when the call may not act for the stanza. */
  stanzaCheck(call: PeerCall, method: string, stanza: string): void {
    if (!this.rules) return;
    const path = `/openrds.v1.AgentGateway/${method}`;
    this.deny(call, path, tlsAuthDeny(this.rules, { method: path, cn: tlsPeerCn(call), stanza }), stanza);
  }

  /** A CN for listings ('agents'): the peer address plus the CN when there is one. */
  peerName(call: PeerCall): string {
    const cn = this.rules ? tlsPeerCn(call) : undefined;
    return cn === undefined ? call.getPeer() : `${call.getPeer()} (cn ${cn})`;
  }

  private deny(call: PeerCall, method: string, err: AccessDeniedError | undefined, stanza?: string): void {
    if (!err) return;
    const cn = tlsPeerCn(call);
    log.warn(`access denied: ${method} from ${call.getPeer()} cn ${cn === undefined ? '<no verified certificate>' : `'${cn}'`}` +
      `${stanza === undefined ? '' : ` stanza '${stanza}'`}: ${err.message}`);
    throw err;
  }

  /**
   * A server interceptor that refuses, before any handler runs, every call whose method needs a
   * certificate it does not have: public → anyone; admin → admin CNs; agent → agent CNs (the
   * stanza of an agent call is checked by the handler once it has read it).
   */
  interceptor(): grpc.ServerInterceptor {
    return (method, call) => new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, nextMd) => {
            try {
              if (this.rules) this.deny(call, method.path, tlsAuthDeny(this.rules, { method: method.path, cn: tlsPeerCn(call) }) ?? this.revokedDeny(call, method.path));
            } catch (err) {
              const status = errorToGrpc(err);
              call.sendStatus({ code: status.code, details: status.details, metadata: status.metadata });
              return;
            }
            nextMd(metadata);
          },
        });
      },
    });
  }
}
