import * as fs from 'node:fs';
import * as path from 'node:path';
import { StopError, log } from '@openrds/common';
import type { Config } from '@openrds/common';
import type { CommandContext, CommandOutput } from './context';

/** Commands a stop fences (and `stop --force` ends). */
export const FENCED_COMMANDS: ReadonlySet<string> = new Set(['backup', 'expire', 'restore', 'stanza-create', 'archive-push']);

function stopFile(config: Config, stanza: string | undefined): string {
  return path.join(config.str('lock-path'), `${stanza ?? 'all'}.stop`);
}

/** Refuses to begin when the stanza (or every stanza) is stopped. */
export function stopCheck(config: Config, stanza: string): void {
  for (const [file, what] of [[stopFile(config, undefined), 'all stanzas'], [stopFile(config, stanza), `stanza '${stanza}'`]] as const) {
    if (fs.existsSync(file)) {
      throw new StopError(`stop file exists for ${what}`, { hint: `run 'openrds-admin start${what === 'all stanzas' ? '' : ` --stanza=${stanza}`}' to allow operations again` });
    }
  }
}

/** `stop [--stanza] [--force]`: fences new operations with a stop file; --force also ends running ones. */
export async function stop(ctx: CommandContext): Promise<CommandOutput> {
  const stanza = ctx.config.stanza;
  const file = stopFile(ctx.config, stanza);
  const what = stanza ? `stanza '${stanza}'` : 'all stanzas';
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o750 });
  const existed = fs.existsSync(file);
  if (!existed) fs.writeFileSync(file, `${new Date().toISOString()}\n`, { mode: 0o640 });
  let text = existed ? `stop file already exists for ${what}\n` : `stopped ${what}: new operations are refused until start\n`;
  if (ctx.config.bool('force')) {
    const ended = ctx.operations.abort(stanza, FENCED_COMMANDS, `stopped by 'openrds-admin stop --force' for ${what}`);
    for (const op of ended) log.warn(`ending ${op.command} of stanza '${op.stanza}' started ${new Date(op.startedAt).toISOString()}`);
    text += `ended ${ended.length} running operation(s)\n`;
  }
  return { text, json: { stanza: stanza ?? null, stopped: true, alreadyStopped: existed } };
}

/** `start [--stanza]`: removes the stop file. */
export async function start(ctx: CommandContext): Promise<CommandOutput> {
  const stanza = ctx.config.stanza;
  const file = stopFile(ctx.config, stanza);
  const what = stanza ? `stanza '${stanza}'` : 'all stanzas';
  const existed = fs.existsSync(file);
  fs.rmSync(file, { force: true });
  if (!existed) log.warn(`${what} was not stopped`);
  return { text: existed ? `started ${what}\n` : `${what} was not stopped\n`, json: { stanza: stanza ?? null, started: existed } };
}
