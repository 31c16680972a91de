import { randomUUID } from 'node:crypto';
import { AccessDeniedError } from '@openrds/common';
import type { ChecksumType } from '@openrds/common';
import type { Repo } from '../repo/repo';

/** A file of a backup job that the agent may upload, and what to do once it is stored. */
export interface BackupTransfer {
  kind: 'backup';
  stanza: string;
  /** The repository the job writes to. */
  repo: Repo;
  /** Repo key for a PGDATA-relative name, or undefined when the name is not part of the job. */
  keyFor(name: string): string | undefined;
  onStored(name: string, result: BackupFileStored): void;
  /** What the uploads are checked with: the checksum type of the job (the agent hashes the repo bytes with it too). */
  checksumType: ChecksumType;
}

export interface BackupFileStored {
  missing: boolean;
  size: number;
  sha256: string;
  repoSize: number;
  repoSha256: string;
}

/** The repo keys of a restore job that the agent may read. */
export interface RestoreTransfer {
  kind: 'restore';
  stanza: string;
  /** The repository the job reads from. */
  repo: Repo;
  allowed: Set<string>;
}

export type Transfer = BackupTransfer | RestoreTransfer;

/**
 * File streams are authorized by the job that asked for them: an agent may only write the files
 * of the backup job it was sent, and read the repo keys of its restore job.
 */
export class TransferRegistry {
  private readonly byJob = new Map<string, Transfer>();

  /** Authorizes the transfer for a new job id while `run(jobId)` runs. */
  async withJob<T>(transfer: Transfer, run: (jobId: string) => Promise<T>): Promise<T> {
    const jobId = randomUUID();
    this.byJob.set(jobId, transfer);
    try {
      return await run(jobId);
    } finally {
      this.byJob.delete(jobId);
    }
  }

  get<K extends Transfer['kind']>(jobId: string, kind: K): Extract<Transfer, { kind: K }> {
    const t = this.byJob.get(jobId);
    if (!t || t.kind !== kind) {
      throw new AccessDeniedError(`no ${kind} job '${jobId}' is in progress`, { hint: 'the job may have ended or been cancelled' });
    }
    return t as Extract<Transfer, { kind: K }>;
  }
}
