// Hand-made protobuf bytes and raw gRPC calls, for tests that send what no
// well-behaved encoder would: messages nested 10,000 deep (a recursive
// encoder overflows before the server sees them), 64 MiB of branches, NUL
// characters, garbage.

import * as grpc from "@grpc/grpc-js";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

/** A varint's bytes. */
export function varint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return Buffer.from(out);
}

/** A length-delimited field: tag, length, bytes. */
export function ld(field: number, bytes: Uint8Array | string): Buffer {
  const body = typeof bytes === "string" ? Buffer.from(bytes, "utf8") : Buffer.from(bytes);
  return Buffer.concat([varint(field * 8 + WireType.LengthDelimited), varint(body.length), body]);
}

/** A varint field. */
export function vi(field: number, value: number): Buffer {
  return Buffer.concat([varint(field * 8 + WireType.Varint), varint(value)]);
}

// Field numbers of pipewright.v1 (see proto/pipewright/v1/*.proto).
export const taskCall = (name: string, ...extra: Buffer[]) => Buffer.concat([ld(1, name), ...extra]);
export const taskStep = (call: Buffer) => ld(1, call); // Step.task
export const pipeline = (...steps: Buffer[]) => Buffer.concat(steps.map((s) => ld(1, s))); // Pipeline.steps
export const groupStep = (branches: Buffer[]) => ld(2, Buffer.concat(branches.map((b) => ld(1, b)))); // Step.group{branches}
export const submitRequest = (p: Buffer, ...extra: Buffer[]) => Buffer.concat([ld(2, p), ...extra]); // SubmitRunRequest.pipeline
export const payloadValue = (json: string) => ld(1, ld(2, json)); // Value.payload{data}

/** Groups nested `depth` deep around a one-task pipeline. */
export function nestedGroups(depth: number, task = "x"): Buffer {
  let p = pipeline(taskStep(taskCall(task)));
  for (let i = 0; i < depth; i++) p = pipeline(groupStep([p]));
  return p;
}

/** A value: a list nested `depth` deep around a payload (depth 1: the payload alone). */
export function nestedValue(depth: number): Buffer {
  let v = payloadValue("1");
  for (let i = 1; i < depth; i++) v = ld(2, ld(1, v)); // Value.list{items}
  return v;
}

/** A group of `n` one-task branches, as one buffer (filled by copying: fast even for millions). */
export function wideGroupPipeline(n: number, task = "x"): Buffer {
  const branch = ld(1, pipeline(taskStep(taskCall(task))));
  const body = Buffer.alloc(branch.length * n);
  for (let i = 0; i < n; i++) branch.copy(body, i * branch.length);
  const group = Buffer.concat([varint(2 * 8 + 2), varint(body.length), body]); // Step.group
  return pipeline(group);
}

const identity = (b: Buffer) => b;

/** One unary call with raw request bytes; resolves with the raw response or rejects with the ServiceError. */
export function rawUnary(address: string, path: string, bytes: Uint8Array, deadlineMs = 60_000): Promise<Buffer> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), {
    "grpc.max_send_message_length": -1,
    "grpc.max_receive_message_length": -1,
  });
  return new Promise<Buffer>((resolve, reject) => {
    client.makeUnaryRequest(path, identity, identity, Buffer.from(bytes), new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res!);
    });
  });
}

/** A bidi stream that writes raw bytes and reads raw messages. */
export function rawStream(address: string, path: string): grpc.ClientDuplexStream<Buffer, Buffer> & { client: grpc.Client } {
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), { "grpc.max_send_message_length": -1 });
  const call = client.makeBidiStreamRequest(path, identity, identity, new grpc.Metadata());
  return Object.assign(call, { client });
}

/** The field violations of a google.rpc.BadRequest carried in an error's `grpc-status-details-bin` trailer. */
export function badRequestViolations(err: grpc.ServiceError): { field: string; description: string }[] {
  const [bin] = err.metadata?.get("grpc-status-details-bin") ?? [];
  if (!bin) return [];
  const out: { field: string; description: string }[] = [];
  const status = new BinaryReader(bin as Buffer);
  while (status.pos < status.len) {
    const [no, type] = status.tag();
    if (no !== 3) {
      status.skip(type, no);
      continue;
    }
    const any = new BinaryReader(status.bytes());
    let typeUrl = "";
    let value: Uint8Array = new Uint8Array();
    while (any.pos < any.len) {
      const [n, t] = any.tag();
      if (n === 1) typeUrl = any.string();
      else if (n === 2) value = any.bytes();
      else any.skip(t, n);
    }
    if (!typeUrl.endsWith("google.rpc.BadRequest")) continue;
    const br = new BinaryReader(value);
    while (br.pos < br.len) {
      const [n, t] = br.tag();
      if (n !== 1) {
        br.skip(t, n);
        continue;
      }
      const fv = new BinaryReader(br.bytes());
      const v = { field: "", description: "" };
      while (fv.pos < fv.len) {
        const [k, tt] = fv.tag();
        if (k === 1) v.field = fv.string();
        else if (k === 2) v.description = fv.string();
        else fv.skip(tt, k);
      }
      out.push(v);
    }
  }
  return out;
}
