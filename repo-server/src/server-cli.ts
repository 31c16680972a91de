#!/usr/bin/env node
// openrds-repo-server: the daemon on the backup host that owns the repository.
import { OpenrdsError, commandHelp, configLoad, errorWrap, log, logInit } from '@openrds/common';
import { repoServerStart } from './server/server';

const PROGRAM = 'openrds-repo-server';

async function main(argv: string[]): Promise<number> {
  // Repository writes and fsyncs run in libuv's threads (4 by default): more of them keep a
  // backup's many small files from queueing. Set before the first asynchronous I/O.
  process.env.UV_THREADPOOL_SIZE ??= '16';
  if (argv.includes('--help') || argv[0] === 'help') {
    process.stdout.write(commandHelp(PROGRAM, 'repo-server'));
    return 0;
  }
  if (argv[0] === 'version') {
    const { OPENRDS_VERSION } = await import('@openrds/common');
    process.stdout.write(`${PROGRAM} ${OPENRDS_VERSION}\n`);
    return 0;
  }
  const rest = argv[0] === 'serve' ? argv.slice(1) : argv;
  try {
    const config = configLoad({ command: 'repo-server', argv: rest });
    logInit({
      process: PROGRAM, command: 'repo-server', levelConsole: config.str('log-level-console'),
      levelFile: config.str('log-level-file'), logPath: config.str('log-path'), timestamp: config.bool('log-timestamp'),
    });
    const server = await repoServerStart(config);
    await new Promise<void>((resolve) => {
      const stop = (sig: string) => () => {
        log.info(`${sig} received: repo-server stopping`);
        void server.stop().then(resolve);
      };
      process.once('SIGTERM', stop('SIGTERM'));
      process.once('SIGINT', stop('SIGINT'));
    });
    return 0;
  } catch (err) {
    const e = errorWrap(err);
    log.error(`[${e.code}]: ${e.toDisplay()}`);
    if (!(err instanceof OpenrdsError)) log.debug((err as Error).stack ?? '');
    return e.code;
  }
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; process.exit(code); });
