// @pipewright/protocol: the contract every side shares. The generated
// messages and services of pipewright.v1, the glue between them and grpc-js,
// and the rules client, worker and server apply alike: pipeline validation,
// step paths, the value codec, error type names, the protocol version and the
// limits. Imports no other Pipewright package.

export * from "./gen/pipewright/v1/value_pb.js";
export * from "./gen/pipewright/v1/pipeline_pb.js";
export * from "./gen/pipewright/v1/run_pb.js";
export * from "./gen/pipewright/v1/run_service_pb.js";
export * from "./gen/pipewright/v1/worker_service_pb.js";
export * from "./gen/pipewright/v1/admin_service_pb.js";
export * from "./gen/pipewright/v1/schedule_service_pb.js";
export * from "./gen/pipewright/v1/event_service_pb.js";

export * from "./runtime/grpc-bridge.js";
export * from "./runtime/grpc-client.js";
export * from "./runtime/limits.js";
export * from "./runtime/error-types.js";
export * from "./runtime/values.js";
export * from "./runtime/validate-pipeline.js";
export * from "./runtime/wait-names.js";
export * from "./runtime/step-paths.js";
export * from "./runtime/value-size.js";
export * from "./runtime/long-timeout.js";
export * from "./runtime/wire-read.js";
export * from "./runtime/wire-scan.js";
export * from "./runtime/wire-canonical.js";
export * from "./runtime/wire-fields.js";
export * from "./runtime/decode-in-slices.js";
export * from "./runtime/durations.js";
export * from "./runtime/tls.js";
export * from "./runtime/namespaces.js";
export * from "./runtime/step-labels.js";
