// The PostgreSQL NOTIFY channels server processes talk on. A notification is
// only ever a hint to look at a table now instead of at the next periodic
// look: losing one delays work, never loses it.

export const CHANNELS = {
  /** Ready queue rows were written (payload empty): idle dispatchers claim. */
  ready: "pipewright_ready",
  /** An attempt a worker holds was cancelled (payload: [process id, run id, step, attempt] as JSON). */
  cancel: "pipewright_cancel",
  /** Entries were put in a process's inbox (payload: the owner process id). */
  inbox: "pipewright_inbox",
  /** Runs finished (payload: their uids, comma-separated): waits on other processes wake. */
  finished: "pipewright_finished",
  /** A run was deleted (DeleteRun; payload: its uid): processes drop what they remember of it. */
  deleted: "pipewright_deleted",
  /** A server process started (payload: its id). */
  peers: "pipewright_peers",
  /** A schedule was created or changed (payload empty): schedulers look at their next fire again. */
  schedules: "pipewright_schedules",
} as const;
