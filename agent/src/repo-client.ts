import { Config, GRPC_CHANNEL_OPTIONS, protoLoad, repoTarget, tlsClientCredentials } from '@openrds/common';
import type { AgentGatewayClient } from '@openrds/common';

export { repoTunnelClose } from '@openrds/common';

/**
 * A client of the repo-server's AgentGateway, addressed by repo-host / repo-host-port (TLS with
 * repo-host-*-file; through an SSH tunnel with repo-host-type=ssh).
 */
export function repoClientNew(config: Config): AgentGatewayClient {
  const v1 = protoLoad();
  const target = repoTarget(config);
  return new v1.AgentGateway(target.address, tlsClientCredentials(config), { ...GRPC_CHANNEL_OPTIONS, ...target.options }) as AgentGatewayClient;
}

/** The address a client dials, for error messages. */
export function repoAddress(config: Config): string {
  return repoTarget(config).via;
}
