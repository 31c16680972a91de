import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Config } from '@openrds/common';
import { FETCHING_SUFFIX } from './async-get';
import { ALIVE_FILE } from './async-push';
import { WAIT_MAX_S, WAIT_SUFFIX } from './spool-wake';

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
 * The shell's wait for the daemon's answer about the spool file `$<v>` (a shell variable naming
 * `<dir>/<file>`) while `cond` holds, woken by the daemon (see spool-wake.ts): a FIFO
 * `$<v>.$$.wait` held open (fd 9 read-write, fd 8 read-only), `cond` looked at once more, then a
 * line read from it, WAIT_MAX_S at most. Where no FIFO can be made, no wait: Node starts, checks the spool itself
 * and joins the daemon's push or fetch (a polling wait, kept for that case until stop 26, cost 190
 * characters of a line PostgreSQL 15 and older cut at 1023).
 *
 * `alive`, when given, is the file by which the daemon vouches to be running: its modification
 * time is kept a few seconds ahead (see AsyncPusher), so `[ alive -nt fifo ]` against the FIFO
 * just made tells, with no process started, whether a daemon will answer. Under load each
 * process the shell starts (a `cat` and a `date` for that check before) costs milliseconds.
 *
 * `placed`, when given, names the FIFO the daemon places for the file as its push starts
 * (WaitFifos): when it is there the shell waits on it and starts no `mkfifo` (nor looks at
 * `alive`'s time: a daemon killed with one in place costs that shell its 2 s, once).
 */
export function shellWaitWoken(v: string, cond: string, alive?: string, placed?: string): string {
  // Named once (PostgreSQL 15 and older keep 1023 characters of the line).
  const fifo = '$openrds_w';
  // The wait: a read-only end (fd 8, opened with fd 9 before the look: the daemon removes the
  // FIFO as it wakes it), and `sleep` holding the read-write one (inherited at its fork) as the
  // FIFO's only writer besides the daemon. The shell's own `read` returns at the
  // daemon's line, or at end of file once `sleep` exits (or at once, had it not started): no
  // process has to exit between the daemon's wake and the shell (`timeout head` made two), and the
  // wait starts one process fewer. The ends are left open for the shell's last steps (closing
  // them would cost characters of a line PostgreSQL 15 and older cut at 1023).
  // With `alive`: the daemon removes it, then wakes every waiter, as it stops, so a shell that
  // opens its FIFO after that wake sees the file gone and starts Node rather than wait out its 2 s.
  const block = `exec 9<>${fifo} 8<${fifo}; if ${cond}${alive ? ` && [ -f ${alive} ]` : ''}; then sleep ${WAIT_MAX_S} & exec 9<&-; read openrds_r <&8 && kill $! 2>&-; fi;`;
  const woken = alive ? `[ ${alive} -nt ${fifo} ]` : '';
  const own = `openrds_w=$${v}.$$.${WAIT_SUFFIX}; mkfifo -m 600 ${fifo} 2>/dev/null${woken ? ` && ${woken}` : ''}`;
  // With `placed`: the FIFO the daemon placed for this file (see WaitFifos), when it is there, spares
  // the shell its `mkfifo` (a process start, ~10 ms under load); else the shell makes its own.
  // Either is removed here only when the daemon has not woken it (the wait timed out).
  const made = placed ? `openrds_w=${placed}; [ -p ${fifo} ] || { ${own}; }` : own;
  return `${made} && { ${block} }; [ ! -p ${fifo} ] || rm -f ${fifo}`;
}

/**
 * PostgreSQL 15 and older cut archive_command and restore_command at 1023 characters once %p and
 * %f are replaced (MAXPGPATH): the shell fronts name the spool file once, in a variable.
 */
export const PG_COMMAND_MAX = 1023;

/**
 * The longest a command line gets once PostgreSQL replaces %p and %f. archive_command: pg_wal/<file>
 * and <file>, the longest a backup history file's name (40 characters; this measured with a
 * .partial segment's, 32, until stop 26: a PostgreSQL 13 archive_command 8 characters under the
 * limit by that measure was cut at a .backup file). restore_command: pg_wal/RECOVERYHISTORY (the
 * longest of the names PostgreSQL restores to) and a segment's name (history files' are shorter).
 */
export function commandLengthOf(line: string, key: 'archive_command' | 'restore_command' = 'archive_command'): number {
  const f = key === 'archive_command' ? '000000010000000000000001.00000028.backup' : '000000010000000000000001';
  const p = key === 'archive_command' ? `pg_wal/${f}` : 'pg_wal/RECOVERYHISTORY';
  return line.replace(/%p/g, p).replace(/%f/g, f).length;
}

/**
 * The warning for an archive_command or restore_command (`key`) longer than PostgreSQL keeps
 * (for `pgVersion` when known: 15 and older cut archive_command, 13 and older restore_command),
 * or undefined when it fits.
 */
export function commandLengthWarning(key: 'archive_command' | 'restore_command', line: string, pgVersion?: number): string | undefined {
  const length = commandLengthOf(line, key);
  if (length <= PG_COMMAND_MAX || (pgVersion !== undefined && pgVersion > (key === 'archive_command' ? 15 : 13))) return undefined;
  const cut = pgVersion !== undefined ? `PostgreSQL ${pgVersion} cuts it` : 'PostgreSQL 15 and older cut archive_command (13 and older restore_command)';
  return `${key} is ${length} characters long: ${cut} at ${PG_COMMAND_MAX}\nHINT: use a shorter spool-path, config path or install prefix`;
}

/**
 * The archive_command that pushes WAL through this agent. With archive-async=y the daemon pushes
 * each `.ready` file as soon as PostgreSQL marks it, and writes `<file>.ok` in the spool once the
 * repo-server has it durably: while the daemon says it is alive (`daemon.alive`), the shell waits
 * for that (woken by the daemon, see shellWaitWoken; 2 s at most) and starts Node only when it
 * must (no acknowledgement yet, or the daemon recorded an error for the file, which Node then
 * reports so that PostgreSQL retries). Node's start-up (~100 ms) is then never on the path of a
 * segment the daemon handles.
 */
export function agentArchiveCommand(config: Config, stanza: string): string {
  const push = `${agentCommandLine(config)} archive-push %p --stanza=${stanza}${configArgOf(config)}`;
  if (config.get('archive-async') !== true) return push;
  const out = path.join(config.str('spool-path'), 'archive', stanza, 'out');
  const ok = '[ -f $openrds_f.ok ]';
  const alive = `\${openrds_f%/*}/${ALIVE_FILE}`;
  const wait = shellWaitWoken('openrds_f', `[ ! -f $openrds_f.ok ] && [ ! -f $openrds_f.error ]`, alive, `$openrds_f.${WAIT_SUFFIX}`);
  // No `exit`: the line composes (a wrapper that times or logs it still runs after it).
  return `openrds_f=${out}/%f; ${ok} || { ${wait}; ${ok} || ${push}; }`;
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
 * (`<file>.fetching`), the shell waits for it (woken by the daemon, 2 s at most) instead of
 * starting Node.
 */
export function agentRestoreCommand(config: Config, stanza: string): string {
  const get = `${agentCommandLine(config)} archive-get %f "%p" --stanza=${stanza}${configArgOf(config)}`;
  if (config.get('archive-async') !== true) return get;
  const inDir = path.join(config.str('spool-path'), 'archive', stanza, 'in');
  // The marker read by the shell's own `read` (no `cat` started: each process counts under load).
  const fresh = `openrds_m=0; { read -r openrds_m < $openrds_f.missing; } 2>/dev/null; [ "$openrds_m" -gt "$(date +%s)" ]`;
  const take = 'test -f $openrds_f && mv $openrds_f "%p"';
  // The daemon is fetching this very segment (recovery caught up with the prefetch): wait for it
  // here rather than start Node to join that fetch. The FIFO is made only then: a history file or
  // the end of the archive is answered without it. Where no FIFO can be made, Node joins the
  // fetch.
  const fetching = `$openrds_f.${FETCHING_SUFFIX}`;
  const wait = shellWaitWoken('openrds_f', `[ -f ${fetching} ] && [ ! -f $openrds_f ]`);
  return `openrds_f=${inDir}/%f; ${take} || { [ ! -f ${fetching} ] || { ${wait}; }; ${take}; } || { ${fresh} && exit 1; } || ${get}`;
}
