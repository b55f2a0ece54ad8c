/**
 * The standard gRPC health service (grpc.health.v1.Health: Check and Watch), written by
 * hand: its two messages are encoded with protobuf-es's BinaryWriter/BinaryReader, and
 * its file descriptor is built in code so reflection (buf curl, grpcurl) can list it.
 * See https://github.com/grpc/grpc/blob/master/doc/health-checking.md
 */
import * as grpc from "@grpc/grpc-js";
import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { FieldDescriptorProto_Label, FieldDescriptorProto_Type, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";

/** grpc.health.v1.HealthCheckResponse.ServingStatus */
export const ServingStatus = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;
export type ServingStatus = (typeof ServingStatus)[keyof typeof ServingStatus];

export interface HealthCheckRequest {
  service: string;
}
export interface HealthCheckResponse {
  status: ServingStatus;
}

const toBuffer = (u8: Uint8Array) => Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);

function encodeRequest(m: HealthCheckRequest): Buffer {
  const w = new BinaryWriter();
  if (m.service) w.tag(1, WireType.LengthDelimited).string(m.service);
  return toBuffer(w.finish());
}

function decodeRequest(b: Uint8Array): HealthCheckRequest {
  const r = new BinaryReader(b);
  const m: HealthCheckRequest = { service: "" };
  while (r.pos < r.len) {
    const [no, type] = r.tag();
    if (no === 1 && type === WireType.LengthDelimited) m.service = r.string();
    else r.skip(type, no);
  }
  return m;
}

function encodeResponse(m: HealthCheckResponse): Buffer {
  const w = new BinaryWriter();
  if (m.status) w.tag(1, WireType.Varint).int32(m.status);
  return toBuffer(w.finish());
}

function decodeResponse(b: Uint8Array): HealthCheckResponse {
  const r = new BinaryReader(b);
  const m: HealthCheckResponse = { status: ServingStatus.UNKNOWN };
  while (r.pos < r.len) {
    const [no, type] = r.tag();
    if (no === 1 && type === WireType.Varint) m.status = r.int32() as ServingStatus;
    else r.skip(type, no);
  }
  return m;
}

const method = (name: string, responseStream: boolean): grpc.MethodDefinition<HealthCheckRequest, HealthCheckResponse> => ({
  path: `/grpc.health.v1.Health/${name}`,
  requestStream: false,
  responseStream,
  requestSerialize: encodeRequest,
  requestDeserialize: decodeRequest,
  responseSerialize: encodeResponse,
  responseDeserialize: decodeResponse,
  originalName: name,
});

/** The grpc-js definition of grpc.health.v1.Health; also usable with `grpc.makeGenericClientConstructor`. */
export const healthDefinition: grpc.ServiceDefinition = { Check: method("Check", false), Watch: method("Watch", true) };

const LABEL_OPTIONAL = FieldDescriptorProto_Label.OPTIONAL;
const { STRING, ENUM } = FieldDescriptorProto_Type;
const pkg = ".grpc.health.v1.";

/** Serialized FileDescriptorProto of grpc/health/v1/health.proto (Check and Watch), for reflection. */
export const healthFileDescriptor: Uint8Array = toBinary(
  FileDescriptorProtoSchema,
  create(FileDescriptorProtoSchema, {
    name: "grpc/health/v1/health.proto",
    package: "grpc.health.v1",
    syntax: "proto3",
    messageType: [
      {
        name: "HealthCheckRequest",
        field: [{ name: "service", jsonName: "service", number: 1, label: LABEL_OPTIONAL, type: STRING }],
      },
      {
        name: "HealthCheckResponse",
        field: [
          {
            name: "status",
            jsonName: "status",
            number: 1,
            label: LABEL_OPTIONAL,
            type: ENUM,
            typeName: `${pkg}HealthCheckResponse.ServingStatus`,
          },
        ],
        enumType: [
          {
            name: "ServingStatus",
            value: Object.entries(ServingStatus).map(([name, number]) => ({ name, number })),
          },
        ],
      },
    ],
    service: [
      {
        name: "Health",
        method: [
          { name: "Check", inputType: `${pkg}HealthCheckRequest`, outputType: `${pkg}HealthCheckResponse` },
          { name: "Watch", inputType: `${pkg}HealthCheckRequest`, outputType: `${pkg}HealthCheckResponse`, serverStreaming: true },
        ],
      },
    ],
  }),
);

export interface Health {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
  /** Sets a service's status ("" is the whole server); watchers get the change. Ignored after shutdown(). */
  setStatus(service: string, status: "SERVING" | "NOT_SERVING"): void;
  /** Sets every status NOT_SERVING, tells the watchers, ends their streams, and freezes the statuses. */
  shutdown(): void;
}

/**
 * Creates the health service. "" (the overall status) starts SERVING unless `initial` says
 * otherwise; other names are unknown until set. Check on an unknown name answers NOT_FOUND;
 * Watch on it streams SERVICE_UNKNOWN until the name is set.
 * @example
 * const health = createHealth();
 * server.addService(health.definition, health.implementation);
 * health.setStatus("pipewright.v1.RunService", "SERVING");
 */
export function createHealth(initial: Record<string, "SERVING" | "NOT_SERVING"> = { "": "SERVING" }): Health {
  const statuses = new Map<string, ServingStatus>(Object.entries(initial).map(([name, s]) => [name, ServingStatus[s]]));
  const watchers = new Map<string, Set<grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>>>();
  let terminal = false;

  const notify = (service: string, status: ServingStatus) => {
    for (const call of watchers.get(service) ?? []) call.write({ status });
  };

  const implementation: grpc.UntypedServiceImplementation = {
    Check: ((call, callback) => {
      const status = statuses.get(call.request.service);
      if (status === undefined) callback({ code: grpc.status.NOT_FOUND, details: `unknown service ${call.request.service}` });
      else callback(null, { status });
    }) satisfies grpc.handleUnaryCall<HealthCheckRequest, HealthCheckResponse>,
    Watch: ((call) => {
      const service = call.request.service;
      call.write({ status: statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN });
      if (terminal) return void call.end();
      let set = watchers.get(service);
      if (!set) watchers.set(service, (set = new Set()));
      set.add(call);
      const forget = () => {
        set.delete(call);
        if (set.size === 0 && watchers.get(service) === set) watchers.delete(service);
      };
      call.on("cancelled", forget);
      call.on("close", forget);
      call.on("error", forget); // e.g. a write after the client went away
    }) satisfies grpc.handleServerStreamingCall<HealthCheckRequest, HealthCheckResponse>,
  };

  return {
    definition: healthDefinition,
    implementation,
    setStatus(service, status) {
      if (terminal) return;
      const next = ServingStatus[status];
      if (statuses.get(service) === next) return;
      statuses.set(service, next);
      notify(service, next);
    },
    shutdown() {
      if (terminal) return;
      terminal = true;
      for (const service of statuses.keys()) {
        if (statuses.get(service) !== ServingStatus.NOT_SERVING) notify(service, ServingStatus.NOT_SERVING);
        statuses.set(service, ServingStatus.NOT_SERVING);
      }
      for (const set of watchers.values()) for (const call of set) call.end();
      watchers.clear();
    },
  };
}
