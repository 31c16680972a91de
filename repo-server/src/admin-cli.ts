#!/usr/bin/env node
// openrds-admin: the operator's command line; every command runs on the repo-server.
import * as grpc from '@grpc/grpc-js';
// Modules one at a time, not the whole of @openrds/common (zstd, storage SDKs): this program
// starts for every command an operator or a script runs (about 40 ms less per start, warm).
import { commandHelp, configLoad, optionEnvName, type CommandName, type Config } from '@openrds/common/dist/config';
import { AccessDeniedError, CommandInvalidError, OpenrdsError, OptionRequiredError, errorWrap } from '@openrds/common/dist/error';
import { errorFromGrpc } from '@openrds/common/dist/rpc/error-transport';
import { grpcDeadline } from '@openrds/common/dist/rpc/call';
import { GRPC_CHANNEL_OPTIONS, protoLoad } from '@openrds/common/dist/rpc/proto';
import { repoTarget, repoTunnelClose } from '@openrds/common/dist/rpc/ssh-tunnel';
import { tlsClientCertProblem, tlsClientCredentials } from '@openrds/common/dist/rpc/tls';
import type { AdminClient, CommandEvent__Output, PingReply__Output } from '@openrds/common';

const PROGRAM = 'openrds-admin';
const REMOTE: CommandName[] = ['stanza-create', 'check', 'backup', 'info', 'restore', 'expire', 'verify', 'stop', 'start', 'agents', 'key-list', 'key-rotate'];
/** Options that configure the admin itself and are not sent to the repo-server. */
const LOCAL_OPTIONS = new Set(['config', 'config-include-path', 'repo-host', 'repo-host-port', 'repo-host-cert-file', 'repo-host-key-file',
  'repo-host-ca-file', 'log-level-console', 'log-level-file', 'log-path', 'log-timestamp', 'output']);
/** Commands openrds-admin runs itself: `pki init`, `pki issue`, `server-ping`. */
const LOCAL: CommandName[] = ['pki-init', 'pki-issue', 'pki-revoke', 'server-ping'];

function adminClientNew(config: Config): { client: AdminClient; address: string } {
  const target = repoTarget(config);
  return { client: new (protoLoad().Admin)(target.address, tlsClientCredentials(config), { ...GRPC_CHANNEL_OPTIONS, ...target.options }) as AdminClient, address: target.via };
}

/** A refusal by the repo-server, with what this side can tell about its own certificate. */
function accessDeniedExplain(err: OpenrdsError, config: Config): OpenrdsError {
  if (!(err instanceof AccessDeniedError) || !err.message.includes('requires a client certificate')) return err;
  const problem = tlsClientCertProblem(config);
  return problem === undefined ? err : new AccessDeniedError(err.message, { hint: `${problem}; ${err.hint ?? ''}` });
}

/** `pki init`, `pki issue` (local, no server) and `server-ping` (no client certificate needed). */
async function localRun(command: CommandName, config: Config): Promise<number> {
  if (command === 'pki-init') {
    const { CA_DAYS, pkiInit } = await import('./pki/pki.js');
    const dir = config.str('pki-path');
    const days = config.get('days') as number | undefined;
    const r = await pkiInit(dir, { hosts: config.list('host'), ...(days === undefined ? {} : { days }) });
    process.stdout.write(`created CA ${r.ca.cert} (key ${r.ca.key}, valid ${days ?? CA_DAYS} days) and repo-server certificate ${r.server.cert} for ${config.list('host').join(', ')}
`
      + `repo-server settings:
  tls-server-cert-file=${r.server.cert}
  tls-server-key-file=${r.server.key}
  tls-server-ca-file=${r.ca.cert}
`
      + `keep ${r.ca.key} offline when you can: whoever has it can issue certificates
`);
    return 0;
  }
  if (command === 'pki-revoke') {
    const { pkiRevoke } = await import('./pki/pki.js');
    const cn = config.str('cn');
    const r = await pkiRevoke(config.str('pki-path'), cn);
    process.stdout.write(`revoked the certificate of CN '${cn}' (serial ${r.serial}); ${r.crl} lists it
repo-server setting: tls-server-crl-file=${r.crl} (copy it to the backup host when the PKI lives elsewhere; re-read within seconds)
`);
    return 0;
  }
  if (command === 'pki-issue') {
    const { CERT_DAYS, pkiIssue } = await import('./pki/pki.js');
    const dir = config.str('pki-path');
    const cn = config.str('cn');
    const days = config.get('days') as number | undefined;
    const r = await pkiIssue(dir, { cn, ...(days === undefined ? {} : { days }) });
    process.stdout.write(`issued client certificate ${r.cert} (key ${r.key}) for CN '${cn}', valid ${days ?? CERT_DAYS} days
`
      + `client settings (agent or openrds-admin):
  repo-host-cert-file=${r.cert}
  repo-host-key-file=${r.key}
  repo-host-ca-file=${dir.replace(/\/$/, '')}/ca.crt
`
      + `repo-server settings: tls-server-auth=${cn}=<stanza>[,<stanza>...] for an agent, tls-server-admin=${cn} for an admin
`);
    return 0;
  }
  const { client, address } = adminClientNew(config);
  const started = Date.now();
  try {
    const reply = await new Promise<PingReply__Output>((resolve, reject) =>
      client.ping({}, { deadline: grpcDeadline(config.num('io-timeout') * 1000) }, (err, r) => (err ? reject(errorFromGrpc(err, address)) : resolve(r!))));
    process.stdout.write(`repo-server ${address} (${reply.version}) answered in ${Date.now() - started} ms
`);
    return 0;
  } finally {
    client.close();
    repoTunnelClose();
  }
}


function logLine(level: string, message: string): string {
  return `${level.toUpperCase().padStart(6)}: ${message}\n`;
}

/** Commands of two words (`pki init`, `key rotate`): the first word and its second words. */
const TWO_WORD: Readonly<Record<string, readonly string[]>> = { pki: ['init', 'issue', 'revoke'], key: ['list', 'rotate'] };

async function main(argv: string[]): Promise<number> {
  const words = argv.filter((a) => !a.startsWith('-'));
  const word = words[0];
  if (!word || word === 'help' || argv.includes('--help')) {
    const [first, second] = word === 'help' ? words.slice(1) : words;
    const about = first !== undefined && TWO_WORD[first] ? `${first}-${second}` : first;
    const known = about !== undefined && [...REMOTE, ...LOCAL].includes(about as CommandName);
    process.stdout.write(commandHelp(PROGRAM, known ? about as CommandName : undefined));
    return 0;
  }
  if (word === 'version') {
    const { OPENRDS_VERSION } = await import('@openrds/common/dist/version.js');
    process.stdout.write(`${PROGRAM} ${OPENRDS_VERSION}\n`);
    return 0;
  }
  const rest = [...argv];
  rest.splice(argv.indexOf(word), 1);
  let config: Config | undefined;
  try {
    let command = word as CommandName;
    const subs = TWO_WORD[word];
    if (subs) {
      const sub = words[1];
      if (sub === undefined || !subs.includes(sub)) {
        throw new CommandInvalidError(`invalid command '${word}${sub ? ` ${sub}` : ''}'`, { hint: `use ${subs.map((x) => `'${PROGRAM} ${word} ${x}'`).join(' or ')}` });
      }
      rest.splice(rest.indexOf(sub), 1);
      command = `${word}-${sub}` as CommandName;
    }
    if (!REMOTE.includes(command) && !LOCAL.includes(command)) {
      throw new CommandInvalidError(`invalid command '${word}'`, { hint: `run '${PROGRAM} help' for the list of commands` });
    }
    config = configLoad({ command, argv: rest });
    if (LOCAL.includes(command)) return await localRun(command, config);
    const options: Record<string, string> = {};
    const listOptions: string[] = [];
    for (const [name, value] of Object.entries(config.explicit())) {
      if (LOCAL_OPTIONS.has(name) || name === 'stanza' || /^repo\d+-cipher-pass-new$/.test(name)) continue;
      if (Array.isArray(value)) listOptions.push(...value.map((v) => `${name}=${v}`));
      else if (value !== null && typeof value === 'object') listOptions.push(...Object.entries(value).map(([k, v]) => `${name}=${k}=${v}`));
      else options[name] = String(value);
    }
    // The one secret a client sends: the new passphrase of key rotate (from its environment).
    if (command === 'key-rotate') {
      const name = `repo${String(config.get('repo') ?? 1)}-cipher-pass-new`;
      const pass = config.strOpt(name);
      if (pass === undefined) {
        throw new OptionRequiredError(`key-rotate command requires option: ${name}`,
          { hint: `set ${optionEnvName(name)} in the environment of openrds-admin (never on the command line)` });
      }
      options[name] = pass;
    }
    const { client, address } = adminClientNew(config);
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
      repoTunnelClose();
    }
    return exitCode;
  } catch (err) {
    const e = config ? accessDeniedExplain(errorWrap(err), config) : errorWrap(err);
    process.stderr.write(`ERROR: [${e.code}]: ${e.toDisplay()}\n`);
    if (!(err instanceof OpenrdsError) && process.env.OPENRDS_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    return e.code;
  }
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
