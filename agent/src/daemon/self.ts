import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Config } from '@openrds/common';

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

/** The restore_command that fetches WAL through this agent. */
export function agentRestoreCommand(config: Config, stanza: string): string {
  const configPath = config.source('config') !== 'default' ? config.strOpt('config') : undefined;
  const configArg = configPath ? ` --config=${configPath}` : '';
  return `${agentCommandLine(config)} archive-get %f "%p" --stanza=${stanza}${configArg}`;
}
