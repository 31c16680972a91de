/** A command running on the repo-server, with the handle that ends it. */
export interface Operation {
  command: string;
  stanza: string | undefined;
  startedAt: number;
  abort: AbortController;
}

/** The commands running now, so that `stop --force` can end the ones of a stanza. */
export class OperationRegistry {
  private readonly ops = new Set<Operation>();

  add(op: Operation): () => void {
    this.ops.add(op);
    return () => { this.ops.delete(op); };
  }

  /** Aborts the running commands of a stanza (all stanzas when undefined); returns what it ended. */
  abort(stanza: string | undefined, commands: ReadonlySet<string>, reason: string): Operation[] {
    const ended = [...this.ops].filter((op) => commands.has(op.command) && (stanza === undefined || op.stanza === stanza));
    for (const op of ended) op.abort.abort(new Error(reason));
    return ended;
  }
}
