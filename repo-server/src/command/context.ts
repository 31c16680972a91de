import type { Config } from '@openrds/common';
import type { ArchiveStore } from './archive/archive-store';
import type { Repo } from '../repo/repo';
import type { RepoHandle } from '../repo/repo-set';
import type { AgentRegistry } from '../server/agent-registry';
import type { OperationRegistry } from '../server/operations';
import type { TransferRegistry } from '../server/transfers';

/** What every admin command runs with on the repo-server. */
export interface CommandContext {
  config: Config;
  /** The repository the command acts on: --repo, or repo1. */
  repo: Repo;
  /** Every repository of the repo-server, in order. */
  repos: readonly RepoHandle[];
  agents: AgentRegistry;
  transfers: TransferRegistry;
  /** The WAL archive of `repo`. */
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
