/**
 * Every option of every openrds program, defined once: type, default, which commands take it,
 * where it may appear, whether it is a secret. Names follow pgBackRest where it has the option.
 */
export type CommandName =
  | 'repo-server' | 'agent' | 'archive-push' | 'archive-get' | 'archive-command'
  | 'stanza-create' | 'check' | 'backup' | 'info' | 'restore' | 'expire' | 'verify' | 'stop' | 'start' | 'agents'
  | 'server-ping' | 'pki-init' | 'pki-issue' | 'pki-revoke' | 'key-list' | 'key-rotate' | 'version' | 'help';

export type OptionType = 'string' | 'integer' | 'boolean' | 'size' | 'time' | 'list' | 'hash' | 'enum' | 'path';
export type OptionValue = string | number | boolean | string[] | Record<string, string>;

export interface OptionDef {
  name: string;
  type: OptionType;
  default?: OptionValue;
  allowed?: readonly string[];
  commands: readonly CommandName[] | 'all';
  /**
   * Where it may appear in the config file: 'global' = any section, 'stanza' = only [<stanza>] and
   * [<stanza>:<command>], 'command-line' = not in the file (command line and environment only).
   */
  section: 'global' | 'stanza' | 'command-line';
  secret?: boolean;
  description: string;
  min?: number;
  max?: number;
  /** Values must match, e.g. a stanza name becomes a path in the repository. */
  pattern?: { regex: RegExp; describe: string };
  /** Commands that cannot run without it. */
  required?: readonly CommandName[];
  /** Per-command default and allowed values (the same name means different things per command). */
  commandDefault?: Partial<Record<CommandName, OptionValue>>;
  commandAllowed?: Partial<Record<CommandName, readonly string[]>>;
}

export interface CommandDef {
  name: CommandName;
  program: 'openrds-agent' | 'openrds-repo-server' | 'openrds-admin';
  /** The word typed on the command line (the daemon of the agent is 'serve'). */
  word: string;
  summary: string;
  args?: string;
}

export const commandTable: readonly CommandDef[] = [
  { name: 'repo-server', program: 'openrds-repo-server', word: 'serve', summary: 'run the repo-server daemon on the backup host' },
  { name: 'agent', program: 'openrds-agent', word: 'serve', summary: 'run the agent daemon on a PostgreSQL host (as the PGDATA owner)' },
  { name: 'archive-push', program: 'openrds-agent', word: 'archive-push', summary: 'push a WAL file to the archive (archive_command): through the agent daemon when one runs, directly when compress-type or compress-level is given here', args: '%p' },
  { name: 'archive-get', program: 'openrds-agent', word: 'archive-get', summary: 'get a WAL file from the archive (restore_command): exit 0 found, 1 not found, 126 error', args: '%f "%p"' },
  { name: 'archive-command', program: 'openrds-agent', word: 'archive-command', summary: 'print the archive_command and restore_command for postgresql.conf (with archive-async=y: shell fast paths that start Node only when needed)' },
  { name: 'stanza-create', program: 'openrds-admin', word: 'stanza-create', summary: 'create the stanza from the cluster the agent serves' },
  { name: 'check', program: 'openrds-admin', word: 'check', summary: 'check the configuration and that WAL reaches the archive' },
  { name: 'backup', program: 'openrds-admin', word: 'backup', summary: 'take a backup' },
  { name: 'info', program: 'openrds-admin', word: 'info', summary: 'show backups and WAL archive' },
  { name: 'restore', program: 'openrds-admin', word: 'restore', summary: 'restore a backup, optionally to a point in time' },
  { name: 'expire', program: 'openrds-admin', word: 'expire', summary: 'expire backups and WAL by the retention options (also run after every backup)' },
  { name: 'verify', program: 'openrds-admin', word: 'verify', summary: 're-read every repo file of the archive and the backups and check it against its checksum' },
  { name: 'stop', program: 'openrds-admin', word: 'stop', summary: 'fence a stanza (or all): new backups, expires, restores and WAL pushes are refused; --force ends running ones' },
  { name: 'start', program: 'openrds-admin', word: 'start', summary: 'lift the fence that stop put on a stanza (or all)' },
  { name: 'agents', program: 'openrds-admin', word: 'agents', summary: 'list the agents connected to the repo-server' },
  { name: 'pki-revoke', program: 'openrds-admin', word: 'pki revoke', summary: 'revoke the certificate of --cn: writes <pki-path>/crl.pem for tls-server-crl-file (local)' },
  { name: 'key-list', program: 'openrds-admin', word: 'key list', summary: "show the passphrase versions and data keys of an encrypted stanza's key file (no key material)" },
  { name: 'key-rotate', program: 'openrds-admin', word: 'key rotate', summary: 'add a new passphrase version (from OPENRDS_REPO<N>_CIPHER_PASS_NEW, N of --repo, 1 by default): new data is encrypted with new keys, nothing is rewritten' },
  { name: 'server-ping', program: 'openrds-admin', word: 'server-ping', summary: 'check that the repo-server answers (no client certificate needed)' },
  { name: 'pki-init', program: 'openrds-admin', word: 'pki init', summary: 'create a CA and the repo-server certificate in --pki-path (local, uses openssl)' },
  { name: 'pki-issue', program: 'openrds-admin', word: 'pki issue', summary: 'issue a client certificate (agent or admin) for --cn with the CA in --pki-path (local)' },
  { name: 'version', program: 'openrds-admin', word: 'version', summary: 'print the version' },
  { name: 'help', program: 'openrds-admin', word: 'help', summary: 'print help' },
];

const ADMIN: CommandName[] = ['stanza-create', 'check', 'backup', 'info', 'restore', 'expire', 'verify', 'stop', 'start', 'agents', 'key-list', 'key-rotate'];
const AGENT: CommandName[] = ['agent', 'archive-push', 'archive-get', 'archive-command'];
const CLIENTS: CommandName[] = [...AGENT, ...ADMIN, 'server-ping'];
const PKI: CommandName[] = ['pki-init', 'pki-issue', 'pki-revoke'];
const SERVER_SIDE: CommandName[] = ['repo-server', ...ADMIN];
const LOG_LEVELS = ['off', 'error', 'warn', 'info', 'detail', 'debug', 'trace'] as const;

/** Repositories a repo-server can hold at once: repo1-* ... repo4-*. */
export const REPO_MAX = 4;

/**
 * The repoN-* options from their repo1-* definitions: the same for every N, except that only
 * repo1 has a default path (repo2..4 exist when their path or type is set) and only repo1's may be required.
 */
function perRepo(defs: OptionDef[]): OptionDef[] {
  const out: OptionDef[] = [];
  for (let n = 1; n <= REPO_MAX; n++) {
    for (const d of defs) {
      if (n === 1) { out.push(d); continue; }
      const { default: dflt, required, ...rest } = d;
      out.push({
        ...rest, name: d.name.replace(/^repo1-/, `repo${n}-`), description: d.description.replace(/repo1-/g, `repo${n}-`).replace(/REPO1_/g, `REPO${n}_`),
        ...(dflt !== undefined && !d.name.endsWith('-path') ? { default: dflt } : {}),
        ...(required ? { required } : {}),
      });
    }
  }
  return out;
}

export const optionTable: readonly OptionDef[] = [
  // --- general
  { name: 'stanza', type: 'string', commands: [...AGENT, ...ADMIN], section: 'command-line', description: 'the stanza (one PostgreSQL cluster) to act on',
    pattern: { regex: /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, describe: 'letters, digits, \'_\', \'.\' and \'-\' (at most 64, the first a letter or digit)' },
    required: ['agent', 'archive-push', 'archive-get', 'archive-command', 'stanza-create', 'check', 'backup', 'restore', 'expire', 'verify', 'key-list', 'key-rotate'] },
  { name: 'config', type: 'path', default: '/etc/openrds/openrds.conf', commands: 'all', section: 'command-line', description: 'configuration file (--no-config: none)' },
  { name: 'config-include-path', type: 'path', default: '/etc/openrds/conf.d', commands: 'all', section: 'command-line', description: 'directory of *.conf files merged after the configuration file (the default one only without --config)' },
  { name: 'log-level-console', type: 'enum', allowed: LOG_LEVELS, default: 'warn', commands: 'all', section: 'global', description: 'level of log lines on the console (stderr)',
    commandDefault: { 'repo-server': 'info', agent: 'info' } },
  { name: 'log-level-file', type: 'enum', allowed: LOG_LEVELS, default: 'off', commands: 'all', section: 'global', description: 'level of log lines in the log file' },
  { name: 'log-path', type: 'path', default: '/var/log/openrds', commands: 'all', section: 'global', description: 'directory of log files' },
  { name: 'log-timestamp', type: 'boolean', default: true, commands: 'all', section: 'global', description: 'timestamp console log lines' },
  { name: 'output', type: 'enum', allowed: ['text', 'json'], default: 'text', commands: ['info', 'agents', 'verify', 'key-list'], section: 'command-line', description: 'output format' },

  // --- repository (repo-server)
  ...perRepo([
    { name: 'repo1-type', type: 'enum', allowed: ['posix', 's3', 'azure'], default: 'posix', commands: SERVER_SIDE, section: 'global', description: 'type of the repository storage: posix (a directory), s3, azure' },
    { name: 'repo1-path', type: 'path', default: '/var/lib/openrds', commands: SERVER_SIDE, section: 'global', description: 'path of the repository' },
    // S3 (repo1-type=s3): repo1-path is the key prefix in the bucket.
    { name: 'repo1-s3-bucket', type: 'string', commands: SERVER_SIDE, section: 'global', description: 'S3 bucket of the repository' },
    { name: 'repo1-s3-endpoint', type: 'string', commands: SERVER_SIDE, section: 'global', description: 'S3 endpoint URL (default: AWS for repo1-s3-region), e.g. https://s3.example.net or http://127.0.0.1:7480' },
    { name: 'repo1-s3-region', type: 'string', default: 'us-east-1', commands: SERVER_SIDE, section: 'global', description: 'S3 region' },
    { name: 'repo1-s3-uri-style', type: 'enum', allowed: ['host', 'path'], default: 'host', commands: SERVER_SIDE, section: 'global', description: 'bucket in the host name (host) or in the path (path: most S3-compatible servers)' },
    { name: 'repo1-s3-key-type', type: 'enum', allowed: ['shared', 'auto'], default: 'shared', commands: SERVER_SIDE, section: 'global', description: "shared: repo1-s3-key and repo1-s3-key-secret; auto: the AWS SDK's default credential chain (environment, profile, instance role)" },
    { name: 'repo1-s3-key', type: 'string', commands: SERVER_SIDE, section: 'global', secret: true, description: 'S3 access key id' },
    { name: 'repo1-s3-key-secret', type: 'string', commands: SERVER_SIDE, section: 'global', secret: true, description: 'S3 secret access key' },
    { name: 'repo1-s3-verify-tls', type: 'boolean', default: true, commands: SERVER_SIDE, section: 'global', description: "verify the S3 endpoint's TLS certificate" },
    // Azure (repo1-type=azure): repo1-path is the blob name prefix in the container.
    { name: 'repo1-azure-account', type: 'string', commands: SERVER_SIDE, section: 'global', description: 'Azure storage account' },
    { name: 'repo1-azure-container', type: 'string', commands: SERVER_SIDE, section: 'global', description: 'Azure blob container of the repository' },
    { name: 'repo1-azure-key-type', type: 'enum', allowed: ['shared', 'sas'], default: 'shared', commands: SERVER_SIDE, section: 'global', description: 'shared: repo1-azure-key is the account key; sas: it is a shared access signature' },
    { name: 'repo1-azure-key', type: 'string', commands: SERVER_SIDE, section: 'global', secret: true, description: 'Azure account key or SAS token' },
    { name: 'repo1-azure-endpoint', type: 'string', commands: SERVER_SIDE, section: 'global', description: 'blob endpoint URL (default https://<account>.blob.core.windows.net; azurite: http://127.0.0.1:10000/devstoreaccount1)' },
    { name: 'repo1-cipher-type', type: 'enum', allowed: ['none', 'aes-256-gcm'], default: 'none', commands: SERVER_SIDE, section: 'global', description: 'encryption of the repository (chosen when a stanza is created): agents encrypt data before it leaves the DB host' },
    { name: 'repo1-cipher-pass', type: 'string', commands: SERVER_SIDE, section: 'global', secret: true, description: "passphrase that opens the stanzas' key files (at least 8 characters; the newest one after a key rotate)" },
    { name: 'repo1-cipher-pass-new', type: 'string', commands: ['key-rotate'], section: 'global', secret: true, description: 'the new passphrase for key rotate (environment OPENRDS_REPO1_CIPHER_PASS_NEW; sent to the repo-server, never stored)' },
  ]),
  { name: 'repo', type: 'integer', min: 1, max: REPO_MAX, commands: ['backup', 'expire', 'restore', 'verify', 'info', 'key-list', 'key-rotate'], section: 'command-line',
    description: 'the repository to act on (backup: 1 by default; restore: the first that has the set; expire, verify, info: all)' },

  // --- repo-server listener and how clients reach it
  { name: 'tls-server-address', type: 'string', default: '127.0.0.1', commands: ['repo-server'], section: 'global', description: 'address the repo-server listens on (a non-loopback address requires TLS)' },
  { name: 'tls-server-port', type: 'integer', default: 8432, min: 0, max: 65535, commands: ['repo-server'], section: 'global', description: 'port the repo-server listens on' },
  { name: 'tls-server-cert-file', type: 'path', commands: ['repo-server'], section: 'global', description: 'server certificate, PEM (setting it turns on mutual TLS; openrds-admin pki init makes one)' },
  { name: 'tls-server-key-file', type: 'path', commands: ['repo-server'], section: 'global', description: 'server private key, PEM (mode 0600: refused when group or others may read it)' },
  { name: 'tls-server-ca-file', type: 'path', commands: ['repo-server'], section: 'global', description: 'CA that client certificates must be signed by, PEM (required with TLS)' },
  { name: 'tls-server-crl-file', type: 'path', commands: ['repo-server'], section: 'global', description: 'certificate revocation list, PEM, signed by tls-server-ca-file (openrds-admin pki revoke writes <pki-path>/crl.pem); re-read when it changes' },
  { name: 'tls-server-auth', type: 'hash', default: {}, commands: ['repo-server'], section: 'global', description: "agents by client certificate CN: <cn>=<stanza>[,<stanza>...] or <cn>=* (repeatable, one per CN)" },
  { name: 'tls-server-admin', type: 'list', default: [], commands: ['repo-server'], section: 'global', description: 'client certificate CNs that may run openrds-admin commands (repeatable or comma-separated)' },
  { name: 'repo-host', type: 'string', default: '127.0.0.1', commands: CLIENTS, section: 'global', description: 'host of the repo-server that agents and openrds-admin dial (with TLS: a name or IP in its certificate)' },
  // SSH tunnel (repo-host-type=ssh): the repo-server listens on the backup host's loopback; gRPC goes through SSH to repo-host.
  { name: 'repo-host-type', type: 'enum', allowed: ['direct', 'ssh'], default: 'direct', commands: CLIENTS, section: 'global', description: 'direct: dial repo-host:repo-host-port; ssh: tunnel gRPC through an SSH connection to repo-host (the repo-server listening on its loopback)' },
  { name: 'repo-host-user', type: 'string', commands: CLIENTS, section: 'global', description: 'SSH user on the backup host (default: the user running the program)' },
  { name: 'repo-host-ssh-port', type: 'integer', default: 22, min: 1, max: 65535, commands: CLIENTS, section: 'global', description: 'SSH port of the backup host' },
  { name: 'repo-host-ssh-key-file', type: 'path', commands: CLIENTS, section: 'global', description: 'SSH private key (default ~/.ssh/id_ed25519; mode 0600: refused when group or others may read it)' },
  { name: 'repo-host-ssh-known-hosts', type: 'path', commands: CLIENTS, section: 'global', description: "known_hosts file that pins the backup host's SSH key (default ~/.ssh/known_hosts; an unknown or changed key is refused)" },
  { name: 'repo-host-port', type: 'integer', default: 8432, min: 1, max: 65535, commands: CLIENTS, section: 'global', description: 'port of the repo-server' },
  { name: 'repo-host-cert-file', type: 'path', commands: CLIENTS, section: 'global', description: 'client certificate presented to the repo-server, PEM (its CN is what tls-server-auth / tls-server-admin name)' },
  { name: 'repo-host-key-file', type: 'path', commands: CLIENTS, section: 'global', description: 'private key of repo-host-cert-file, PEM (mode 0600: refused when group or others may read it)' },
  { name: 'repo-host-ca-file', type: 'path', commands: CLIENTS, section: 'global', description: "CA that signed the repo-server's certificate, PEM (setting any repo-host-*-file dials with TLS)" },

  // --- certificates (openrds-admin pki, local)
  { name: 'pki-path', type: 'path', commands: PKI, section: 'global', description: 'directory of the CA and the certificates (ca.crt, ca.key, server.crt, server.key, <cn>.crt, <cn>.key)',
    required: PKI },
  { name: 'host', type: 'list', default: ['localhost', '127.0.0.1'], commands: ['pki-init'], section: 'command-line', description: "name or IP address the repo-server is reached by, put in its certificate (repeatable; the first is the CN)" },
  { name: 'cn', type: 'string', commands: ['pki-issue', 'pki-revoke'], section: 'command-line', description: 'common name of the client certificate: what tls-server-auth and tls-server-admin name',
    pattern: { regex: /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/, describe: "letters, digits, '_', '.', '@' and '-' (at most 64, the first a letter or digit)" },
    required: ['pki-issue', 'pki-revoke'] },
  { name: 'days', type: 'integer', min: 1, max: 36500, commands: ['pki-init', 'pki-issue'], section: 'command-line', description: 'validity in days (default: CA 3650, certificates 825)' },

  // --- the cluster (agent; pg1-path also for restore)
  { name: 'pg1-path', type: 'path', commands: [...AGENT, 'restore'], section: 'stanza', description: 'PGDATA of the cluster (restore: where to restore, default the agent\'s PGDATA)',
    required: ['agent'] },
  { name: 'pg1-port', type: 'integer', default: 5432, min: 1, max: 65535, commands: AGENT, section: 'stanza', description: 'port of the cluster' },
  { name: 'pg1-socket-path', type: 'path', default: '/var/run/postgresql', commands: AGENT, section: 'stanza', description: 'unix socket directory of the cluster' },
  { name: 'pg1-user', type: 'string', default: 'postgres', commands: AGENT, section: 'stanza', description: 'database user the agent connects as' },
  { name: 'pg1-database', type: 'string', default: 'postgres', commands: AGENT, section: 'stanza', description: 'database the agent connects to' },
  { name: 'restore-as-root', type: 'boolean', default: false, commands: ['agent'], section: 'command-line', description: 'let the agent daemon run as root for restores only (every restored file is then chowned to the owner of pg1-path); backups and SQL are refused' },
  { name: 'agent-socket-path', type: 'path', default: '/var/run/openrds/agent.sock', commands: AGENT, section: 'global', description: 'unix socket of the agent daemon for archive-push/archive-get' },
  { name: 'archive-async', type: 'boolean', default: false, commands: AGENT, section: 'global', description: 'push WAL ahead of PostgreSQL from the agent daemon, acknowledged in spool-path (archive_command: what openrds-agent archive-command prints, a shell that waits for <spool-path>/archive/<stanza>/out/%f.ok and starts Node only when it must)' },
  { name: 'archive-push-stream', type: 'boolean', default: false, commands: AGENT, section: 'global', description: 'with archive-async=y, zst compression and an unencrypted repository: the daemon sends the WAL PostgreSQL has flushed (pg_current_wal_flush_lsn, asked over the pg1-* connection; on a standby the finished pages, checked against the file at the push) of the segment it is writing to the repo-server ahead, so that the push of a ready segment sends only the rest, usually nothing. A stage far behind (a bulk load) is dropped and the segment pushed whole. Costs CPU on the database host while WAL is written: worth it for an OLTP load' },
  { name: 'archive-push-queue-max', type: 'size', min: 0, commands: AGENT, section: 'global', description: 'when pushes fail and more WAL than this waits in pg_wal, drop it (reported as archived, with a warning) so the disk does not fill: PITR across the gap is lost' },
  { name: 'archive-get-queue-max', type: 'size', default: 128 * 1024 * 1024, min: 0, commands: AGENT, section: 'global', description: 'WAL fetched ahead of recovery with archive-async=y (restore_command: test -f <spool-path>/archive/<stanza>/in/%f && mv ... || <wait while %f.fetching> || <fresh %f.missing> && exit 1 || openrds-agent archive-get %f "%p" ...; restore writes it)' },
  { name: 'spool-path', type: 'path', default: '/var/spool/openrds', commands: AGENT, section: 'global', description: 'spool directory (asynchronous archiving)' },
  { name: 'lock-path', type: 'path', default: '/tmp/openrds', commands: 'all', section: 'global', description: 'directory of lock files' },
  { name: 'cmd', type: 'path', commands: ['agent', 'archive-command'], section: 'global', description: 'openrds-agent path written into restore_command and the printed archive_command (default: this installation)' },

  // --- compression and transfer
  { name: 'compress-type', type: 'enum', allowed: ['none', 'zst', 'lz4', 'gz'], default: 'zst', commands: ['agent', 'archive-push', 'backup'], section: 'global', description: 'compression of files in the repository (zst levels 1-19; lz4, the fastest, has one level; gz 1-9)' },
  { name: 'compress-level', type: 'integer', default: 3, min: 1, max: 19, commands: ['agent', 'archive-push', 'backup'], section: 'global', description: 'compression level' },
  { name: 'compress-level-network', type: 'integer', default: 1, min: 1, max: 19, commands: ['agent', 'archive-push', 'backup'], section: 'global', description: 'compression level on the wire when compress-type=none' },
  { name: 'checksum-type', type: 'enum', allowed: ['blake3', 'sha256'], default: 'blake3', commands: ['backup'], section: 'global', description: "checksum of every backup file's content, recorded in the manifest and checked by restore, delta restore and verify: blake3 (cryptographic, about 4x the speed of sha256 here) or sha256 (what sha256sum shows); WAL files always carry sha256" },
  { name: 'process-max', type: 'integer', default: 1, min: 1, max: 999, commands: ['agent', 'backup', 'restore'], section: 'global', description: 'files transferred at once, and the agent worker threads (of one per core) that read, hash, compress and write them (asynchronous WAL push: this many compressions, twice as many pushes on their way)' },
  { name: 'buffer-size', type: 'size', default: 1024 * 1024, min: 16384, commands: 'all', section: 'global', description: 'buffer size of file transfers' },

  // --- timeouts
  { name: 'archive-timeout', type: 'time', default: 60, min: 0.1, max: 86400, commands: ['agent', 'archive-push', 'archive-get', 'check', 'backup'], section: 'global', description: 'seconds to wait for WAL to be archived (per segment without progress)' },
  { name: 'db-timeout', type: 'time', default: 1800, min: 0.1, commands: ['agent', 'backup', 'check'], section: 'global', description: 'seconds a database query may take' },
  { name: 'io-timeout', type: 'time', default: 60, min: 0.1, commands: 'all', section: 'global', description: 'seconds without progress on a transfer' },
  { name: 'protocol-timeout', type: 'time', default: 1830, min: 0.1, commands: 'all', section: 'global', description: 'seconds a remote operation may take' },

  // --- backup
  { name: 'type', type: 'enum', commands: ['backup', 'restore'], section: 'command-line', description: 'backup type (full|diff|incr) or restore type (default|immediate|time|xid|lsn|name|standby|preserve|none)',
    commandDefault: { backup: 'incr', restore: 'default' },
    commandAllowed: { backup: ['full', 'diff', 'incr'], restore: ['default', 'immediate', 'time', 'xid', 'lsn', 'name', 'standby', 'preserve', 'none'] } },
  { name: 'start-fast', type: 'boolean', default: false, commands: ['backup'], section: 'global', description: 'force an immediate checkpoint to start the backup' },
  { name: 'online', type: 'boolean', default: true, commands: ['backup'], section: 'global', description: 'back up a running cluster' },
  { name: 'archive-check', type: 'boolean', default: true, commands: ['backup'], section: 'global', description: 'wait until the WAL of the backup is archived' },
  { name: 'exclude', type: 'list', default: [], commands: ['backup'], section: 'global', description: "PGDATA-relative path to exclude ('dir/' for its contents)" },
  { name: 'resume', type: 'boolean', default: true, commands: ['backup'], section: 'global', description: 'resume an interrupted full backup (--no-resume starts over)' },
  { name: 'manifest-save-threshold', type: 'size', default: 1024 * 1024 * 1024, min: 1, commands: ['backup'], section: 'global', description: 'save the resumable record of a backup every this many bytes copied (at least 1% of the backup)' },
  { name: 'checksum-page', type: 'boolean', commands: ['backup'], section: 'global', description: 'validate data page checksums (default: when the cluster has them)' },

  // --- retention (backup runs expire when it completes)
  ...perRepo([
    { name: 'repo1-retention-full', type: 'integer', min: 1, max: 9999999, commands: ['backup', 'expire'], section: 'global', description: 'full backups to keep (or days, with repo1-retention-full-type=time)' },
    { name: 'repo1-retention-full-type', type: 'enum', allowed: ['count', 'time'], default: 'count', commands: ['backup', 'expire'], section: 'global', description: 'whether repo1-retention-full counts backups or days' },
    { name: 'repo1-retention-diff', type: 'integer', min: 1, max: 9999999, commands: ['backup', 'expire'], section: 'global', description: 'differential backups to keep' },
    { name: 'repo1-retention-archive', type: 'integer', min: 1, max: 9999999, commands: ['backup', 'expire'], section: 'global', description: 'backups whose WAL is kept (default: as many as repo1-retention-full)' },
    { name: 'repo1-retention-archive-type', type: 'enum', allowed: ['full', 'diff', 'incr'], default: 'full', commands: ['backup', 'expire'], section: 'global', description: 'which backups repo1-retention-archive counts' },
  ]),
  { name: 'expire-auto', type: 'boolean', default: true, commands: ['backup'], section: 'global', description: 'expire after a successful backup' },
  { name: 'dry-run', type: 'boolean', default: false, commands: ['expire'], section: 'command-line', description: 'say what would be expired without removing anything' },

  // --- restore
  { name: 'set', type: 'string', commands: ['restore', 'info', 'expire', 'verify'], section: 'command-line', description: 'backup set (label); default the latest' },
  { name: 'target', type: 'string', commands: ['restore'], section: 'command-line', description: 'recovery target (time, xid, lsn or name, by --type)' },
  { name: 'target-action', type: 'enum', allowed: ['pause', 'promote', 'shutdown'], default: 'pause', commands: ['restore'], section: 'command-line', description: 'action when the target is reached' },
  { name: 'target-exclusive', type: 'boolean', default: false, commands: ['restore'], section: 'command-line', description: 'stop just before the target' },
  { name: 'target-timeline', type: 'string', commands: ['restore'], section: 'command-line', description: 'timeline to recover along (current, latest or a number)' },
  { name: 'delta', type: 'boolean', default: false, commands: ['backup', 'restore'], section: 'command-line', description: 'compare files by checksum rather than size and time' },
  { name: 'force', type: 'boolean', default: false, commands: ['backup', 'restore', 'stop'], section: 'command-line', description: 'force the operation' },
  { name: 'recovery-option', type: 'hash', default: {}, commands: ['restore'], section: 'global', description: 'extra recovery setting key=value (repeatable)' },
  { name: 'tablespace-map', type: 'hash', default: {}, commands: ['restore'], section: 'global', description: 'restore a tablespace elsewhere: <name or oid>=<path> (repeatable)' },
  { name: 'archive-mode', type: 'enum', allowed: ['preserve', 'off'], default: 'preserve', commands: ['restore'], section: 'command-line', description: 'archive_mode of the restored cluster' },
];

const byName = new Map(optionTable.map((o) => [o.name, o]));

/** The definition of an option, or undefined. */
export function optionFind(name: string): OptionDef | undefined {
  return byName.get(name);
}

/** True when the option applies to the command. */
export function optionValidFor(def: OptionDef, command: CommandName): boolean {
  return def.commands === 'all' || def.commands.includes(command);
}
