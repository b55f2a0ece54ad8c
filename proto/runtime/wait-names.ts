// Names that a wait step waits for (Wait.signal, Wait.event) and that
// RunService.SignalRun sends: one rule for the pipeline's validation, the
// server's checks of a signal and the client's.

/** Longest signal or event name. */
export const MAX_WAIT_NAME_LENGTH = 200;

/** Letters, digits and a few separators: safe in logs, URLs and CLI arguments, and never confusable with another name by invisible characters. */
const WAIT_NAME = /^[A-Za-z0-9._:\/-]+$/;

/** Why `name` cannot be a signal or event name, if it cannot. */
export function waitNameProblem(name: string): string | undefined {
  if (name.length === 0) return "must not be empty";
  if (name.length > MAX_WAIT_NAME_LENGTH) return `must be at most ${MAX_WAIT_NAME_LENGTH} characters, got ${name.length}`;
  if (!WAIT_NAME.test(name)) return `must hold only letters, digits and "._:-/", got ${JSON.stringify(name.slice(0, 50))}`;
  return undefined;
}
