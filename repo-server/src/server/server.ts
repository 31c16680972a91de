import * as grpc from '@grpc/grpc-js';
import {
  Config, ConfigError, GRPC_SERVER_OPTIONS, grpcAddress, grpcServerSessionWindow, grpcServerStreamWindow, log, protoLoad,
  tlsFileRead, tlsKeyFileRead,
  MemoryGovernor,
} from '@openrds/common';
import { repoSetOpen } from '../repo/repo-set';
import { CrlWatch } from './crl';
import { stopCheck } from '../command/stop';
import { adminHandlers } from './admin-service';
import { OperationRegistry } from './operations';
import { AgentRegistry } from './agent-registry';
import { gatewayHandlers } from './gateway';
import { TlsAuthorizer, tlsAuthParse } from './tls-auth';
import { TransferRegistry } from './transfers';

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

export interface RepoServer {
  server: grpc.Server;
  port: number;
  agents: AgentRegistry;
  stop(): Promise<void>;
}

/**
 * Starts the repo-server: the AgentGateway and Admin services on tls-server-address:port.
 * Without TLS it listens on loopback only: anything else would expose the repository.
 */
export async function repoServerStart(config: Config): Promise<RepoServer> {
  const host = config.str('tls-server-address');
  const port = config.int('tls-server-port');
  const tls = serverTlsLoad(config);
  if (!tls && !LOOPBACK.test(host)) {
    throw new ConfigError(`refusing to listen on '${host}' without TLS`,
      { hint: 'set tls-server-cert-file, tls-server-key-file and tls-server-ca-file (openrds-admin pki init makes them), or listen on 127.0.0.1 (tls-server-address)' });
  }
  const crlFile = config.strOpt('tls-server-crl-file');
  if (crlFile !== undefined && !tls) throw new ConfigError('tls-server-crl-file needs mutual TLS', { hint: 'set tls-server-cert-file, tls-server-key-file and tls-server-ca-file too' });
  const auth = new TlsAuthorizer(tls?.rules, crlFile !== undefined ? new CrlWatch(crlFile, config.str('tls-server-ca-file')) : undefined);
  const repos = repoSetOpen(config);
  const agents = new AgentRegistry();
  const transfers = new TransferRegistry();
  const v1 = protoLoad();
  const server = new grpc.Server({ ...GRPC_SERVER_OPTIONS, interceptors: tls ? [auth.interceptor()] : [] });
  grpcServerStreamWindow(server);
  const configPath = config.source('config') === 'default' ? undefined : config.strOpt('config');
  server.addService(v1.Admin.service, adminHandlers({ repos, agents, transfers, operations: new OperationRegistry(), configPath }));
  server.addService(v1.AgentGateway.service, gatewayHandlers({ repos, agents, transfers, stopCheck: (stanza) => stopCheck(config, stanza), auth }));
  const bound = await new Promise<number>((resolve, reject) => {
    server.bindAsync(grpcAddress(host, port), tls?.credentials ?? grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  grpcServerSessionWindow(server);
  const memory = new MemoryGovernor().start();
  log.info(`repo-server listening on ${grpcAddress(host, bound)}${tls ? ' (mutual TLS)' : ' (plain, loopback only)'}, ${repos.map(({ repo }) =>
    `repo${repo.key} ${config.str(`repo${repo.key}-type`)} '${config.str(`repo${repo.key}-path`)}'${repo.cipher.enabled ? ' (aes-256-gcm)' : ''}`).join(', ')}`);
  return {
    server, port: bound, agents,
    stop: async () => {
      memory.stop();
      await new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        setTimeout(() => { server.forceShutdown(); resolve(); }, 5000).unref();
      });
      // Staged WAL parts do not outlive the process (their agents push whole or stage again).
      await Promise.all(repos.map(({ archive }) => archive.stagesDrop().catch(() => undefined)));
    },
  };
}

/**
 * A certificate provider that hands grpc-js the same files once (both the CA and the identity).
 * Updates are delivered after the listener is added: grpc-js registers its watcher only then.
 */
function staticCertificates(ca: Buffer, certificate: Buffer, privateKey: Buffer): grpc.experimental.CertificateProvider {
  return {
    addCaCertificateListener: (l) => queueMicrotask(() => l({ caCertificate: ca })),
    removeCaCertificateListener: () => undefined,
    addIdentityCertificateListener: (l) => queueMicrotask(() => l({ certificate, privateKey })),
    removeIdentityCertificateListener: () => undefined,
  };
}

/**
 * The server's TLS settings, or undefined when tls-server-cert-file is not set (plain, loopback).
 * Client certificates are requested and verified against tls-server-ca-file by the TLS layer, but
 * a connection without a valid one is not dropped there: it reaches the interceptor, which refuses
 * every call but Ping with AccessDeniedError and logs who it refused. A TLS-level rejection would
 * leave the client with a bare connection reset and the server with no log line.
 */
function serverTlsLoad(config: Config): { credentials: grpc.ServerCredentials; rules: ReturnType<typeof tlsAuthParse> } | undefined {
  const certFile = config.strOpt('tls-server-cert-file');
  const keyFile = config.strOpt('tls-server-key-file');
  const caFile = config.strOpt('tls-server-ca-file');
  if (certFile === undefined && keyFile === undefined && caFile === undefined) return undefined;
  const missing = (['tls-server-cert-file', 'tls-server-key-file', 'tls-server-ca-file'] as const)
    .filter((o) => config.strOpt(o) === undefined);
  if (missing.length > 0) {
    throw new ConfigError(`mutual TLS needs ${missing.join(' and ')}`,
      { hint: 'set tls-server-cert-file, tls-server-key-file and tls-server-ca-file together (openrds-admin pki init makes them)' });
  }
  const rules = tlsAuthParse(config.hash('tls-server-auth'), config.list('tls-server-admin'));
  if (rules.agents.size === 0) log.warn('tls-server-auth is empty: no agent may connect (tls-server-auth=<cn>=<stanza>)');
  if (rules.admins.size === 0) log.warn('tls-server-admin is empty: no openrds-admin may run commands (tls-server-admin=<cn>)');
  const key = tlsKeyFileRead(keyFile!, 'tls-server-key-file');
  const cert = tlsFileRead(certFile!, 'tls-server-cert-file');
  const ca = tlsFileRead(caFile!, 'tls-server-ca-file');
  // grpc-js passes (ca, identity) to a constructor that takes (identity, ca): one provider for both is immune to the order.
  const provider = staticCertificates(ca, cert, key);
  return { credentials: grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false), rules };
}
