#!/usr/bin/env node
// openrds-admin: the operator's command line; every command runs on the repo-server.
import * as grpc from '@grpc/grpc-js';
import {
  CommandInvalidError, GRPC_CHANNEL_OPTIONS, OpenrdsError, commandHelp, configLoad, errorFromGrpc, errorWrap,
  grpcAddress, protoLoad,
} from '@openrds/common';
import type { AdminClient, CommandEvent__Output, CommandName } from '@openrds/common';

const PROGRAM = 'openrds-admin';
const REMOTE: CommandName[] = ['stanza-create', 'check', 'backup', 'info', 'restore', 'expire', 'verify', 'stop', 'start', 'agents'];
/** Options that configure the admin itself and are not sent to the repo-server. */
const LOCAL_OPTIONS = new Set(['config', 'config-include-path', 'repo-host', 'repo-host-port', 'log-level-console', 'log-level-file', 'log-path', 'log-timestamp', 'output']);

function logLine(level: string, message: string): string {
  return `${level.toUpperCase().padStart(6)}: ${message}\n`;
}

async function main(argv: string[]): Promise<number> {
  const words = argv.filter((a) => !a.startsWith('-'));
  const word = words[0];
  if (!word || word === 'help' || argv.includes('--help')) {
    const about = word === 'help' ? words[1] : word;
    process.stdout.write(commandHelp(PROGRAM, about && REMOTE.includes(about as CommandName) ? about as CommandName : undefined));
    return 0;
  }
  if (word === 'version') {
    const { OPENRDS_VERSION } = await import('@openrds/common');
    process.stdout.write(`${PROGRAM} ${OPENRDS_VERSION}\n`);
    return 0;
  }
  const rest = [...argv];
  rest.splice(argv.indexOf(word), 1);
  try {
    if (!REMOTE.includes(word as CommandName)) {
      throw new CommandInvalidError(`invalid command '${word}'`, { hint: `run '${PROGRAM} help' for the list of commands` });
    }
    const command = word as CommandName;
    const config = configLoad({ command, argv: rest });
    const options: Record<string, string> = {};
    const listOptions: string[] = [];
    for (const [name, value] of Object.entries(config.explicit())) {
      if (LOCAL_OPTIONS.has(name) || name === 'stanza') continue;
      if (Array.isArray(value)) listOptions.push(...value.map((v) => `${name}=${v}`));
      else if (value !== null && typeof value === 'object') listOptions.push(...Object.entries(value).map(([k, v]) => `${name}=${k}=${v}`));
      else options[name] = String(value);
    }
    const v1 = protoLoad();
    const address = grpcAddress(config.str('repo-host'), config.int('repo-host-port'));
    const client = new v1.Admin(address, grpc.credentials.createInsecure(), GRPC_CHANNEL_OPTIONS) as AdminClient;
    const levels = ['off', 'error', 'warn', 'info', 'detail', 'debug', 'trace'];
    const showLevel = levels.indexOf(config.str('log-level-console'));
    const output = config.strOpt('output') ?? 'text';
    let exitCode = 0;
    try {
      const call = client.run({ command, stanza: config.stanza ?? '', options, listOptions, args: config.args });
      for await (const ev of call as AsyncIterable<CommandEvent__Output>) {
        if (ev.log && levels.indexOf(ev.log.level) <= showLevel) process.stderr.write(logLine(ev.log.level, ev.log.message));
        if (ev.result) {
          process.stdout.write(output === 'json' ? `${ev.result.json}\n` : ev.result.text);
          exitCode = ev.result.exitCode;
        }
      }
    } catch (err) {
      throw errorFromGrpc(err as grpc.ServiceError, address);
    } finally {
      client.close();
    }
    return exitCode;
  } catch (err) {
    const e = errorWrap(err);
    process.stderr.write(`ERROR: [${e.code}]: ${e.toDisplay()}\n`);
    if (!(err instanceof OpenrdsError) && process.env.OPENRDS_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    return e.code;
  }
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
