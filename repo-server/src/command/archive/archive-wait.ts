import { ArchiveTimeoutError, log } from '@openrds/common';
import type { PgSql } from '@openrds/common';
import type { RemoteDb } from '../remote-db';
import type { CommandContext } from '../context';

/**
 * Waits until every segment is in the archive. The timeout applies to each stretch without
 * progress, so a long list of segments arriving steadily is not cut short.
 */
export async function archiveWait(ctx: CommandContext, stanza: string, archiveId: string, segments: string[], timeoutMs: number): Promise<void> {
  let missing = [...segments];
  let deadline = Date.now() + timeoutMs;
  let delay = 50;
  for (;;) {
    const before = missing.length;
    missing = await ctx.archive.missing(stanza, archiveId, missing);
    if (missing.length === 0) return;
    if (missing.length < before) deadline = Date.now() + timeoutMs;
    if (Date.now() >= deadline) {
      throw new ArchiveTimeoutError(
        `WAL segment ${missing[0]} was not archived before the ${timeoutMs / 1000}s timeout${missing.length > 1 ? ` (${missing.length} segments missing)` : ''}`,
        { hint: `check the archive_command (it must run 'openrds-agent archive-push %p --stanza=${stanza}') and the PostgreSQL log for errors; raise archive-timeout if archiving is slow` });
    }
    log.debug(`waiting for ${missing.length} WAL segment(s), first ${missing[0]}`);
    // A push this repo-server stores ends the wait at once; the archive is looked at again anyway.
    await ctx.archive.storedOrAfter(stanza, missing, delay, ctx.signal);
    ctx.signal.throwIfAborted();
    delay = Math.min(delay * 2, 1000);
  }
}

/**
 * Forces a WAL switch (after a restore point, so that there is something to switch) and waits
 * for the completed segment in the archive: proof that archive_command works end to end.
 */
export async function archiveSwitchAndWait(ctx: CommandContext, db: RemoteDb, sql: PgSql, stanza: string, archiveId: string,
  timeoutMs: number): Promise<string> {
  const walFile = await archiveSwitch(db, sql);
  log.info(`waiting for WAL segment ${walFile} to be archived`);
  await archiveWait(ctx, stanza, archiveId, [walFile], timeoutMs);
  return walFile;
}

/** Forces a WAL switch (after a restore point, so that there is something to switch); returns the completed segment. */
export async function archiveSwitch(db: RemoteDb, sql: PgSql): Promise<string> {
  await db.query(sql.createRestorePoint('openrds archive check'));
  return (await db.one<{ wal_file: string }>(sql.switchWal)).wal_file;
}
