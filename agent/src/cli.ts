#!/usr/bin/env node
// openrds-agent: the daemon on a PostgreSQL host, and the archive-push / archive-get commands
// that PostgreSQL's archive_command and restore_command call.
import * as path from 'node:path';
// Only light modules here: PostgreSQL starts this program for every WAL file.
import { commandHelp, configLoad, type CommandName, type Config } from '@openrds/common/dist/config';
import { OpenrdsError, errorWrap } from '@openrds/common/dist/error';
import { log, logInit } from '@openrds/common/dist/log';

const PROGRAM = 'openrds-agent';
/** Exit code of archive-get for any error: above 125 PostgreSQL aborts recovery instead of ending it. */
export const ARCHIVE_GET_ERROR_EXIT = 126;

const commands: Record<string, CommandName> = {
  serve: 'agent', 'archive-push': 'archive-push', 'archive-get': 'archive-get', 'archive-command': 'archive-command', version: 'version', help: 'help',
};

async function main(argv: string[]): Promise<number> {
  const words = argv.filter((a) => !a.startsWith('-'));
  const word = words[0];
  if (!word || word === 'help' || argv.includes('--help')) {
    const about = word === 'help' ? words[1] : word;
    process.stdout.write(commandHelp(PROGRAM, about ? commands[about] : undefined));
    return 0;
  }
  const command = commands[word];
  // The daemon's file writes and fsyncs run in libuv's threads (4 by default): more of them keep
  // a restore's many small-file fsyncs from queueing. Set before the first asynchronous I/O.
  if (command === 'agent') process.env.UV_THREADPOOL_SIZE ??= '16';
  if (!command) {
    process.stderr.write(`ERROR: unknown command '${word}'\nHINT: run '${PROGRAM} help' for the list of commands\n`);
    return 27;
  }
  if (command === 'version') {
    const { OPENRDS_VERSION } = await import('@openrds/common/dist/version.js');
    process.stdout.write(`${PROGRAM} ${OPENRDS_VERSION}\n`);
    return 0;
  }
  const rest = [...argv];
  rest.splice(argv.indexOf(word), 1);
  let config: Config | undefined;
  try {
    config = configLoad({ command, argv: rest });
    logInit({
      process: PROGRAM, command, stanza: config.stanza, levelConsole: config.str('log-level-console'),
      levelFile: config.str('log-level-file'), logPath: config.str('log-path'), timestamp: config.bool('log-timestamp'),
    });
    switch (command) {
      case 'agent': {
        const { agentServe } = await import('./daemon/serve.js');
        await agentServe(config);
        return 0;
      }
      case 'archive-push': {
        const { archivePushCommand } = await import('./command/archive/command.js');
        return await archivePushCommand(config, path.resolve(config.args[0] ?? ''));
      }
      case 'archive-get': {
        const { archiveGetCommand } = await import('./command/archive/command.js');
        return await archiveGetCommand(config, config.args[0] ?? '', path.resolve(config.args[1] ?? ''));
      }
      case 'archive-command': {
        const { agentArchiveCommand, agentRestoreCommand, commandLengthWarning } = await import('./daemon/self.js');
        const quote = (v: string): string => `'${v.replace(/'/g, "''")}'`;
        const lines = { archive_command: agentArchiveCommand(config, config.str('stanza')), restore_command: agentRestoreCommand(config, config.str('stanza')) };
        for (const [key, line] of Object.entries(lines)) {
          const warning = commandLengthWarning(key as keyof typeof lines, line);
          if (warning) log.warn(warning);
        }
        process.stdout.write(`archive_command = ${quote(lines.archive_command)}\nrestore_command = ${quote(lines.restore_command)}\n`);
        return 0;
      }
      default:
        return 27;
    }
  } catch (err) {
    const e = errorWrap(err);
    log.error(`[${e.code}]: ${e.toDisplay()}`);
    if (!(err instanceof OpenrdsError)) log.debug((err as Error).stack ?? '');
    return command === 'archive-get' ? ARCHIVE_GET_ERROR_EXIT : e.code;
  }
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err) => {
  process.stderr.write(`ERROR: ${String(err)}\n`);
  process.exitCode = 122;
});
