// The methods the dashboard calls, taken from the generated service descriptors, so the
// paths, request and response types are the protocol's own and cannot drift from it.

import type { DescMethodServerStreaming, DescMethodUnary, DescMessage } from "@bufbuild/protobuf";
import { AdminService } from "../../../proto/gen/pipewright/v1/admin_service_pb.js";
import { EventService } from "../../../proto/gen/pipewright/v1/event_service_pb.js";
import { RunService } from "../../../proto/gen/pipewright/v1/run_service_pb.js";
import { ScheduleService } from "../../../proto/gen/pipewright/v1/schedule_service_pb.js";
import { method, type Method } from "./gateway.js";

type AnyMethod = DescMethodUnary<DescMessage, DescMessage> | DescMethodServerStreaming<DescMessage, DescMessage>;

/** `pipewright.v1.RunService/ListRuns` and its schemas, from a generated method descriptor. */
function gatewayMethod<M extends AnyMethod>(m: M): Method<M["input"], M["output"]> {
  return method(`${m.parent.typeName}/${m.name}`, m.input, m.output);
}

export const rpc = {
  listRuns: gatewayMethod(RunService.method.listRuns),
  countRuns: gatewayMethod(RunService.method.countRuns),
  getRun: gatewayMethod(RunService.method.getRun),
  watchRun: gatewayMethod(RunService.method.watchRun),
  cancelRun: gatewayMethod(RunService.method.cancelRun),
  pauseRun: gatewayMethod(RunService.method.pauseRun),
  resumeRun: gatewayMethod(RunService.method.resumeRun),
  resubmitRun: gatewayMethod(RunService.method.resubmitRun),
  signalRun: gatewayMethod(RunService.method.signalRun),
  listWorkers: gatewayMethod(AdminService.method.listWorkers),
  listCircuitBreakers: gatewayMethod(AdminService.method.listCircuitBreakers),
  listSchedules: gatewayMethod(ScheduleService.method.listSchedules),
  getSchedule: gatewayMethod(ScheduleService.method.getSchedule),
  listScheduleFires: gatewayMethod(ScheduleService.method.listScheduleFires),
  pauseSchedule: gatewayMethod(ScheduleService.method.pauseSchedule),
  resumeSchedule: gatewayMethod(ScheduleService.method.resumeSchedule),
  triggerSchedule: gatewayMethod(ScheduleService.method.triggerSchedule),
  listTriggers: gatewayMethod(EventService.method.listTriggers),
  listEvents: gatewayMethod(EventService.method.listEvents),
};
