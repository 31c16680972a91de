import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Config } from '@openrds/common';
import { FETCHING_SUFFIX } from './async-get';
import { ALIVE_FILE } from './async-push';

/**
 * The command line that runs this agent, for restore_command: the `cmd` option, else the
 * installed wrapper beside this install (<prefix>/bin/openrds-agent), else node + this script.
 */
export function agentCommandLine(config: Config): string {
  let cmd = config.strOpt('cmd');
  if (!cmd) {
    const wrapper = path.resolve(__dirname, '..', '..', '..', 'bin', 'openrds-agent');
    cmd = fs.existsSync(wrapper) ? wrapper : `${process.execPath} ${path.resolve(__dirname, '..', 'cli.js')}`;
  }
  return cmd;
}

/**
 * The shell's wait for the daemon while `cond` holds, about 2 s in all: every 5 ms, or with
 * `quick` every 2 ms for the first 50 ms (a staged push lands within them), then every 5 ms.
 * Each poll starts `sleep`: the restore_command's wait (a fetch takes 70-170 ms, while recovery
 * competes for the CPU) stays at 5 ms.
 */
function shellWait(cond: string, quick: boolean): string {
  const sleep = quick ? 'if [ $i -lt 25 ]; then sleep 0.002; else sleep 0.005; fi' : 'sleep 0.005';
  return `i=0; while [ $i -lt 400 ] && ${cond}; do ${sleep}; i=$((i+1)); done`;
}

/**
 * The archive_command that pushes WAL through this agent. With archive-async=y the daemon pushes
 * each `.ready` file as soon as PostgreSQL marks it, and writes `<file>.ok` in the spool once the
 * repo-server has it durably: while the daemon says it is alive (`daemon.alive`), the shell waits
 * for that (see shellWait, 2 s at most) and starts Node only when it must (no acknowledgement
 * yet, or the daemon recorded an error for the file, which Node then reports so that PostgreSQL
 * retries). Node's start-up (~100 ms) is then never on the path of a segment the daemon handles.
 */
export function agentArchiveCommand(config: Config, stanza: string): string {
  const push = `${agentCommandLine(config)} archive-push %p --stanza=${stanza}${configArgOf(config)}`;
  if (config.get('archive-async') !== true) return push;
  const out = path.join(config.str('spool-path'), 'archive', stanza, 'out');
  const alive = `[ "$(cat ${out}/${ALIVE_FILE} 2>/dev/null || echo 0)" -ge "$(date +%s)" ]`;
  const ok = `[ -f ${out}/%f.ok ]`;
  const wait = shellWait(`[ ! -f ${out}/%f.ok ] && [ ! -f ${out}/%f.error ]`, true);
  // No `exit`: the line composes (a wrapper that times or logs it still runs after it).
  return `${ok} || { ${alive} && { ${wait}; }; ${ok} || ${push}; }`;
}

function configArgOf(config: Config): string {
  const configPath = config.source('config') !== 'default' ? config.strOpt('config') : undefined;
  return configPath ? ` --config=${configPath}` : '';
}

/**
 * The restore_command that fetches WAL through this agent. With archive-async=y a file the
 * daemon prefetched into the spool is taken with a shell test and a rename, without starting
 * Node (the spool holds only complete, checked files: the daemon renames them in when durable),
 * and "not in the archive" is answered by the shell while the daemon's `<file>.missing` holds a
 * second still to come (see AsyncGetter). While the daemon is fetching the segment asked for
 * (`<file>.fetching`), the shell waits for it (every 5 ms, 2 s at most) instead of starting Node.
 */
export function agentRestoreCommand(config: Config, stanza: string): string {
  const get = `${agentCommandLine(config)} archive-get %f "%p" --stanza=${stanza}${configArgOf(config)}`;
  if (config.get('archive-async') !== true) return get;
  const inDir = path.join(config.str('spool-path'), 'archive', stanza, 'in');
  const fresh = `[ "$(cat ${inDir}/%f.missing 2>/dev/null || echo 0)" -gt "$(date +%s)" ]`;
  const take = `test -f ${inDir}/%f && mv ${inDir}/%f "%p"`;
  // The daemon is fetching this very segment (recovery caught up with the prefetch): wait for it
  // here rather than start Node to join that fetch.
  const wait = shellWait(`[ -f ${inDir}/%f.${FETCHING_SUFFIX} ] && [ ! -f ${inDir}/%f ]`, false);
  return `${take} || { ${wait}; ${take}; } || { ${fresh} && exit 1; } || ${get}`;
}
