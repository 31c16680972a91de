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
  // In every repository (archive-push stores to all of them).
  const lines: string[] = [];
  const results: { repo: number; created: boolean }[] = [];
  for (const { repo } of ctx.repos) {
    const name = ctx.repos.length > 1 ? ` in repo${repo.key}` : '';
    if (await repo.stanzaExists(stanza)) {
      await repo.cipher.stanzaCheck(stanza);
      const info = await repo.archiveInfoLoad(stanza);
      stanzaDbCheck(stanza, info.db, control, 'the cluster');
      await repo.backupInfoLoad(stanza);
      log.info(`stanza '${stanza}' already exists${name} and matches the cluster`);
      lines.push(`stanza '${stanza}' already exists${name} and is valid`);
      results.push({ repo: repo.key, created: false });
      continue;
    }
    const db = dbEntryFromControl(1, control);
    // The key file first: the info files are encrypted with its metadata key.
    await repo.cipher.stanzaCreate(stanza);
    await repo.archiveInfoSave(stanza, { version: 1, db, history: [db] });
    await repo.backupInfoSave(stanza, { version: 1, db, history: [db], backups: [] });
    log.info(`stanza '${stanza}' created${name} for PostgreSQL ${db.pgVersion}, system-id ${db.systemId}${repo.cipher.enabled ? ', encrypted (aes-256-gcm)' : ''}`);
    lines.push(`stanza '${stanza}' created${name}`);
    results.push({ repo: repo.key, created: true });
  }
  return {
    text: `${lines.join('\n')}\n`,
    json: { stanza, created: results.some((r) => r.created), repos: results, systemId: control.systemId, pgVersion: control.pgVersion },
  };
}
