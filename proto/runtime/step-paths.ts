// Step paths name where a step sits ("steps[1].group.branches[0].steps[2]").
// A child pipeline continues its task's path with ".child". Deep recursion
// would make paths grow with every level (and every assignment carry them),
// so past a length they keep only their tail, prefixed with the nesting depth:
// "…(depth 1999)…steps[0].child.steps[1]". Deterministic, and O(1) per level.

const MAX_PATH = 240;
const KEEP_TAIL = 180;

export function childScopePath(taskPath: string, depth: number): string {
  const full = `${taskPath}.child`;
  if (full.length <= MAX_PATH) return full;
  const tail = full.slice(-KEEP_TAIL);
  const boundary = tail.indexOf(".");
  return `…(depth ${depth})…${boundary >= 0 ? tail.slice(boundary + 1) : tail}`;
}
