import * as grpc from '@grpc/grpc-js';
import { Config, GRPC_CHANNEL_OPTIONS, grpcAddress, protoLoad } from '@openrds/common';
import type { AgentGatewayClient } from '@openrds/common';

/** A client of the repo-server's AgentGateway, addressed by repo-host / repo-host-port. */
export function repoClientNew(config: Config): AgentGatewayClient {
  const v1 = protoLoad();
  const address = grpcAddress(config.str('repo-host'), config.int('repo-host-port'));
  return new v1.AgentGateway(address, grpc.credentials.createInsecure(), GRPC_CHANNEL_OPTIONS) as AgentGatewayClient;
}

/** The address a client dials, for error messages. */
export function repoAddress(config: Config): string {
  return grpcAddress(config.str('repo-host'), config.int('repo-host-port'));
}
