// The methods the dashboard's JSON API (json-gateway.ts) serves, by service;
// every other method answers 501 there. docs/json-api.md lists them.

/**
 * What the dashboard's JSON API serves: reads, controls (signals too: a webhook sender speaks
 * JSON over HTTP), counts and resubmit (submitting stays on gRPC, behind admission control).
 * Schedules: reads, pause and resume (control scope) and trigger now (submit scope: one fire,
 * one run, the same as a cron fire); creating and changing them stays on gRPC. Events and
 * triggers: reads only (publishing and trigger changes stay on gRPC).
 */
export const DASHBOARD_METHODS = {
  runs: ["GetRun", "WatchRun", "ListRuns", "CountRuns", "CancelRun", "PauseRun", "ResumeRun", "SignalRun", "ResubmitRun", "DeleteRun"],
  admin: ["GetServerStatus", "ListWorkers", "ListCircuitBreakers"],
  schedules: ["GetSchedule", "ListSchedules", "ListScheduleFires", "PauseSchedule", "ResumeSchedule", "TriggerSchedule"],
  events: ["ListEvents", "ListTriggers"],
} as const;
