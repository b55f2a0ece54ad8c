// Every semantic case through the core state machine (in process) and the
// local runner: both must give the required outcome.

import { describe, it } from "vitest";
import { runLocally } from "../../worker-sdk/local-runner.js";
import { semanticCases } from "../support/semantic-cases.js";
import { expectOutcome } from "../support/outcome-matchers.js";
import { simulate } from "../support/simulate-machine.js";
import { testTasks } from "../support/test-tasks.js";

describe("semantics: core state machine and local runner", () => {
  for (const c of semanticCases) {
    it(c.name, async () => {
      const proto = c.pipeline().toProto();
      expectOutcome(await runLocally(proto, { tasks: testTasks, sleep: async () => {} }), c.expect, "local runner");
      expectOutcome(await simulate(proto, testTasks), c.expect, "core");
    });
  }
});
