import { ConfigError, log, pgSql } from '@openrds/common';
import { archiveIdOf, stanzaDbCheck } from '../repo/repo';
import { archiveSwitchAndWait, archiveWait } from './archive/archive-wait';
import type { CommandContext, CommandOutput } from './context';
import { RemoteDb } from './remote-db';
import { controlReadRemote } from './stanza-create';
import { AGENT_WAIT_MS } from '../server/agent-registry';

/**
 * `check`: the stanza matches the cluster, archiving is configured, and a WAL segment forced
 * out now reaches the archive within archive-timeout.
 */
export async function check(ctx: CommandContext): Promise<CommandOutput> {
  const stanza = ctx.config.str('stanza');
  const info = await ctx.repo.archiveInfoLoad(stanza);
  await ctx.repo.backupInfoLoad(stanza);
  const control = await controlReadRemote(ctx, stanza);
  stanzaDbCheck(stanza, info.db, control, 'the cluster');
  const agent = await ctx.agents.waitForStanza(stanza, AGENT_WAIT_MS);
  const db = await RemoteDb.open(agent, stanza, 'openrds check');
  try {
    const sql = pgSql(control.pgVersion);
    const settings = await db.one<{ archive_mode: string; archive_command: string }>(sql.settings);
    if (settings.archive_mode === 'off') {
      throw new ConfigError('archive_mode must be enabled', { hint: "set archive_mode = on in postgresql.conf and restart PostgreSQL" });
    }
    if (!settings.archive_command || settings.archive_command === '(disabled)') {
      throw new ConfigError('archive_command must be set', { hint: `set archive_command = 'openrds-agent archive-push %p --stanza=${stanza}'` });
    }
    if (!settings.archive_command.includes('openrds-agent') && !settings.archive_command.includes('archive-push')) {
      log.warn(`archive_command '${settings.archive_command}' does not call openrds-agent archive-push`);
    }
    const recovery = await db.one<{ in_recovery: boolean }>(sql.isInRecovery);
    if (recovery.in_recovery) {
      return { text: `stanza '${stanza}': the cluster is a standby; archive check skipped\n`, json: { stanza, standby: true } };
    }
    const timeoutMs = ctx.config.num('archive-timeout') * 1000;
    const walFile = await archiveSwitchAndWait(ctx, db, sql, stanza, archiveIdOf(info.db), timeoutMs);
    // Every repository must have it: archive-push succeeds only when all of them stored it.
    for (const other of ctx.repos.filter((h) => h.repo !== ctx.repo)) {
      await archiveWait({ ...ctx, ...other }, stanza, archiveIdOf((await other.repo.archiveInfoLoad(stanza)).db), [walFile], timeoutMs);
    }
    const where = [ctx.repo, ...ctx.repos.map((h) => h.repo).filter((r) => r !== ctx.repo)].map((r) => `repo${r.key}`).join(', ');
    const text = `stanza '${stanza}': WAL segment ${walFile} successfully archived to ${where} '${archiveIdOf(info.db)}'\n`;
    log.info(text.trim());
    return { text, json: { stanza, walSegment: walFile, archiveId: archiveIdOf(info.db) } };
  } finally {
    await db.close();
  }
}
