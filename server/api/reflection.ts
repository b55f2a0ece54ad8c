/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha), fed with the descriptors that
 * protoc-gen-es embeds in the generated code, so buf curl and grpcurl can list the
 * services and call them with JSON.
 */
import type * as grpc from "@grpc/grpc-js";
import { toBinary } from "@bufbuild/protobuf";
import type { DescFile, DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { ReflectionService } from "@grpc/reflection";

type PackageDefinition = ConstructorParameters<typeof ReflectionService>[0];

/** Serialized FileDescriptorProtos of the services' files and everything they import (google/protobuf/*.proto included). */
export function fileDescriptorSet(services: DescService[]): Uint8Array[] {
  const seen = new Map<string, Uint8Array>();
  const visit = (file: DescFile): void => {
    if (seen.has(file.proto.name)) return;
    seen.set(file.proto.name, toBinary(FileDescriptorProtoSchema, file.proto));
    file.dependencies.forEach(visit);
  };
  services.forEach((s) => visit(s.file));
  return [...seen.values()];
}

/**
 * Adds the reflection services to `server`. Every service declared in the given files is
 * listed; `extraFiles` are more serialized FileDescriptorProtos (e.g. the health service's).
 * @example addReflection(server, [RunService, WorkerService], [healthFileDescriptor]);
 */
export function addReflection(server: grpc.Server, services: DescService[], extraFiles: Uint8Array[] = []): void {
  // @grpc/reflection expects a proto-loader PackageDefinition, but only reads the
  // `fileDescriptorProtos` of its entries, so a single entry carrying every file is enough.
  const fileDescriptorProtos = [...fileDescriptorSet(services), ...extraFiles].map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength));
  const pkg = { "pipewright.reflection.files": { format: "", type: {}, fileDescriptorProtos } } as unknown as PackageDefinition;
  new ReflectionService(pkg).addToServer(server);
}
