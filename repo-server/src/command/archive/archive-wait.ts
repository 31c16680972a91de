import { ArchiveTimeoutError, log, sleep } from '@openrds/common';
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
    await sleep(delay, ctx.signal);
    delay = Math.min(delay * 2, 1000);
  }
}
