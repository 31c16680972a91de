/** The version of every openrds program (agents and repo-server report it to each other). */
export const OPENRDS_VERSION = '0.1.0';
