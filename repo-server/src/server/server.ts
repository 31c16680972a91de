import * as grpc from '@grpc/grpc-js';
import {
  Config, ConfigError, GRPC_SERVER_OPTIONS, grpcAddress, grpcServerSessionWindow, grpcServerStreamWindow, log, protoLoad, storageRepoNew,
} from '@openrds/common';
import { ArchiveStore } from '../command/archive/archive-store';
import { Repo } from '../repo/repo';
import { stopCheck } from '../command/stop';
import { adminHandlers } from './admin-service';
import { OperationRegistry } from './operations';
import { AgentRegistry } from './agent-registry';
import { gatewayHandlers } from './gateway';
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
  const hasTls = !!config.strOpt('tls-server-cert-file') && !!config.strOpt('tls-server-key-file');
  if (!LOOPBACK.test(host)) {
    if (!hasTls) {
      throw new ConfigError(`refusing to listen on '${host}' without TLS`,
        { hint: 'set tls-server-cert-file and tls-server-key-file, or listen on 127.0.0.1 (tls-server-address)' });
    }
    throw new ConfigError(`TLS is not available yet: unable to listen on '${host}'`,
      { hint: 'listen on 127.0.0.1 and reach the repo-server through an SSH tunnel until TLS lands' });
  }
  const repo = new Repo(storageRepoNew({ type: config.str('repo1-type'), path: config.str('repo1-path') }));
  const agents = new AgentRegistry();
  const transfers = new TransferRegistry();
  const archive = new ArchiveStore(repo);
  const v1 = protoLoad();
  const server = new grpc.Server(GRPC_SERVER_OPTIONS);
  grpcServerStreamWindow(server);
  const configPath = config.source('config') === 'default' ? undefined : config.strOpt('config');
  server.addService(v1.Admin.service, adminHandlers({ repo, agents, transfers, archive, operations: new OperationRegistry(), configPath }));
  server.addService(v1.AgentGateway.service, gatewayHandlers({ repo, agents, transfers, archive, stopCheck: (stanza) => stopCheck(config, stanza) }));
  const bound = await new Promise<number>((resolve, reject) => {
    server.bindAsync(grpcAddress(host, port), grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  grpcServerSessionWindow(server);
  log.info(`repo-server listening on ${grpcAddress(host, bound)}, repo1 ${config.str('repo1-type')} '${config.str('repo1-path')}'`);
  return {
    server, port: bound, agents,
    stop: () => new Promise<void>((resolve) => {
      server.tryShutdown(() => resolve());
      setTimeout(() => { server.forceShutdown(); resolve(); }, 5000).unref();
    }),
  };
}
