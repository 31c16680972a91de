import { log } from '@openrds/common';
import { withStanzaLock } from './stanza-lock';
import type { CommandContext, CommandOutput } from './context';

/** `key list`: the passphrase versions and data keys of a stanza's key file, no key material. */
export async function keyList(ctx: CommandContext): Promise<CommandOutput> {
  const stanza = ctx.config.str('stanza');
  const d = (await ctx.repo.cipher.ring(stanza)).describe();
  const lines = [`stanza: ${stanza}`, `    passphrase versions: ${d.versions.map((v) => `${v.version} (${v.created})`).join(', ')}; repo${ctx.repo.key}-cipher-pass opens version ${d.opened}`];
  for (const k of d.keys) lines.push(`    key ${k.id}: ${k.purpose}, made at version ${k.version} (${k.created}), opened by version ${k.openedBy.join(', ')}`);
  return { text: `${lines.join('\n')}\n`, json: { stanza, ...d } };
}

/**
 * `key rotate`: adds a passphrase version. Every existing data key is wrapped with the new
 * passphrase too (it opens all the stanza's data); new WAL, metadata and backups get keys only
 * the new passphrase opens. No data is rewritten. Runs under the stanza's backup lock so that no
 * backup adds a key meanwhile.
 */
export async function keyRotate(ctx: CommandContext): Promise<CommandOutput> {
  const stanza = ctx.config.str('stanza');
  const newPass = ctx.config.str(`repo${ctx.repo.key}-cipher-pass-new`);
  return withStanzaLock(stanza, 'key-rotate', async () => {
    const ring = await ctx.repo.cipher.ring(stanza);
    const version = await ring.rotate(ctx.repo.rawStorage, stanza, newPass);
    // The info files now carry the new metadata key.
    await ctx.repo.archiveInfoSave(stanza, await ctx.repo.archiveInfoLoad(stanza));
    await ctx.repo.backupInfoSave(stanza, await ctx.repo.backupInfoLoad(stanza));
    log.warn(`stanza '${stanza}': keys rotated to passphrase version ${version}; set repo${ctx.repo.key}-cipher-pass to the new passphrase in the repo-server configuration now (a restarted repo-server with the old one opens nothing written since)`);
    return { text: `stanza '${stanza}': passphrase version ${version} added; new data uses it\n`, json: { stanza, version } };
  });
}
