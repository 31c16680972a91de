import { log } from '@openrds/common';
import type { PgControlInfo__Output } from '@openrds/common';
import { dbEntryFromControl, stanzaDbCheck } from '../repo/repo';
import type { CommandContext, CommandOutput } from './context';
import { AGENT_WAIT_MS } from '../server/agent-registry';

/** Reads the cluster's pg_control through the agent serving the stanza. */
export async function controlReadRemote(ctx: CommandContext, stanza: string): Promise<PgControlInfo__Output> {
  const agent = await ctx.agents.waitForStanza(stanza, AGENT_WAIT_MS);
  return agent.job<PgControlInfo__Output>(stanza, { controlRead: {} });
}

/**
 * `stanza-create`: records the cluster's system id and version (read through the agent) in
 * archive.info and backup.info. Running it again for the same cluster is fine; for another
 * cluster it is refused.
 */
export async function stanzaCreate(ctx: CommandContext): Promise<CommandOutput> {
  const stanza = ctx.config.str('stanza');
  const control = await controlReadRemote(ctx, stanza);
  if (await ctx.repo.stanzaExists(stanza)) {
    await ctx.repo.cipher.stanzaCheck(stanza);
    const info = await ctx.repo.archiveInfoLoad(stanza);
    stanzaDbCheck(stanza, info.db, control, 'the cluster');
    await ctx.repo.backupInfoLoad(stanza);
    log.info(`stanza '${stanza}' already exists and matches the cluster`);
    return { text: `stanza '${stanza}' already exists and is valid\n`, json: { stanza, created: false } };
  }
  const db = dbEntryFromControl(1, control);
  // The key file first: the info files are encrypted with its metadata key.
  await ctx.repo.cipher.stanzaCreate(stanza);
  await ctx.repo.archiveInfoSave(stanza, { version: 1, db, history: [db] });
  await ctx.repo.backupInfoSave(stanza, { version: 1, db, history: [db], backups: [] });
  log.info(`stanza '${stanza}' created for PostgreSQL ${db.pgVersion}, system-id ${db.systemId}${ctx.repo.cipher.enabled ? ', encrypted (aes-256-gcm)' : ''}`);
  return { text: `stanza '${stanza}' created\n`, json: { stanza, created: true, systemId: db.systemId, pgVersion: db.pgVersion } };
}
