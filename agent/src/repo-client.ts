import { Config, GRPC_CHANNEL_OPTIONS, grpcAddress, protoLoad, tlsClientCredentials } from '@openrds/common';
import type { AgentGatewayClient } from '@openrds/common';

/** A client of the repo-server's AgentGateway, addressed by repo-host / repo-host-port (TLS with repo-host-*-file). */
export function repoClientNew(config: Config): AgentGatewayClient {
  const v1 = protoLoad();
  const address = grpcAddress(config.str('repo-host'), config.int('repo-host-port'));
  return new v1.AgentGateway(address, tlsClientCredentials(config), GRPC_CHANNEL_OPTIONS) as AgentGatewayClient;
}

/** The address a client dials, for error messages. */
export function repoAddress(config: Config): string {
  return grpcAddress(config.str('repo-host'), config.int('repo-host-port'));
}
