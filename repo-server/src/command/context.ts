import type { Config } from '@openrds/common';
import type { ArchiveStore } from './archive/archive-store';
import type { Repo } from '../repo/repo';
import type { AgentRegistry } from '../server/agent-registry';
import type { OperationRegistry } from '../server/operations';
import type { TransferRegistry } from '../server/transfers';

/** What every admin command runs with on the repo-server. */
export interface CommandContext {
  config: Config;
  repo: Repo;
  agents: AgentRegistry;
  transfers: TransferRegistry;
  archive: ArchiveStore;
  operations: OperationRegistry;
  signal: AbortSignal;
}

/** A command's output: text for humans, JSON for machines. */
export interface CommandOutput {
  text: string;
  json?: unknown;
  /** Non-zero when the command ran to the end but found problems (verify). */
  exitCode?: number;
}
