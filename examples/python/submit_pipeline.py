#!/usr/bin/python3
"""Submits the pipeline "multiply(3, 2) then divide by 2" to a Pipewright
server over plain gRPC and prints its result (3).

Usage:
    /usr/bin/python3 examples/python/submit_pipeline.py [--address 127.0.0.1:50051]   (or PIPEWRIGHT_ADDRESS)
                                                       [--print-run] [--dry-run]

Run it with Debian's /usr/bin/python3 (python3-grpcio, python3-protobuf): a
pyenv `python3` on PATH usually has no grpc module.

Exit codes: 0 success, 1 the run failed (its error is printed to stderr),
2 a gRPC error (status code and details printed to stderr).
"""

import argparse
import json
import os
import subprocess
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(HERE, "gen")
_LAST_GENERATED = os.path.join(GEN, "pipewright", "v1", "run_service_pb2_grpc.py")

# Generate the stubs on first use (and again when a .proto is newer), then make them importable as `pipewright.v1`.
_PROTOS = os.path.join(HERE, "..", "..", "proto", "pipewright", "v1")


def _stale():
    if not os.path.isfile(_LAST_GENERATED):
        return True
    made = os.path.getmtime(_LAST_GENERATED)
    return any(os.path.getmtime(os.path.join(_PROTOS, f)) > made for f in os.listdir(_PROTOS) if f.endswith(".proto"))


if _stale():
    subprocess.run(["bash", os.path.join(HERE, "generate.sh")], check=True, stdout=sys.stderr)
sys.path.insert(0, GEN)

try:
    import grpc
    from google.protobuf import json_format
    from google.protobuf.duration_pb2 import Duration
except ImportError as e:  # most likely a pyenv python3 instead of Debian's
    sys.exit(f"{e}: run this with /usr/bin/python3 (Debian's python3-grpcio and python3-protobuf)")

from pipewright.v1 import pipeline_pb2, run_pb2, run_service_pb2, run_service_pb2_grpc, value_pb2

WAIT_SECONDS = 30


class RemoteError(Exception):
    """A TaskError decoded from a Value (the `error` case)."""

    def __init__(self, type_, message, origin="", details=None, causes=()):
        super().__init__(f"{type_}: {message}")
        self.type = type_
        self.message = message
        self.origin = origin
        self.details = details
        self.causes = list(causes)


def json_value(x):
    """Encodes any JSON-serializable Python value as a Value holding one JSON payload."""
    data = json.dumps(x, allow_nan=False, separators=(",", ":")).encode("utf-8")
    return value_pb2.Value(payload=value_pb2.Payload(encoding="json", data=data))


def decode_value(v):
    """Decodes a Value into Python: JSON/text/bytes payloads, lists, maps, errors.

    An unset Value (or None) decodes to None; an empty JSON payload too.
    The `error` case decodes to a RemoteError instance (returned, not raised).
    """
    if v is None:
        return None
    kind = v.WhichOneof("kind")
    if kind is None:
        return None
    if kind == "payload":
        encoding, data = v.payload.encoding, v.payload.data
        if encoding in ("", "json"):
            return None if not data else json.loads(data.decode("utf-8"))
        if encoding == "text":
            return data.decode("utf-8")
        if encoding == "bytes":
            return bytes(data)
        raise ValueError(f"cannot decode a payload with encoding {encoding!r}")
    if kind == "list":
        return [decode_value(item) for item in v.list.items]
    if kind == "map":
        return {k: decode_value(item) for k, item in v.map.entries.items()}
    if kind == "error":
        return decode_error(v.error)
    raise ValueError(f"unknown Value kind {kind!r}")


def decode_error(e):
    """Decodes a TaskError into a RemoteError."""
    return RemoteError(
        e.type,
        e.message,
        origin=e.origin,
        details=decode_value(e.details) if e.HasField("details") else None,
        causes=[decode_error(c) for c in e.causes],
    )


def task_call(name, *args):
    """A pipeline step that calls the task `name` with JSON arguments."""
    return pipeline_pb2.Step(task=pipeline_pb2.TaskCall(task=name, args=[json_value(a) for a in args]))


def build_request():
    """multiply(3, 2), then divide(<previous result>, 2)."""
    pipeline = pipeline_pb2.Pipeline(steps=[task_call("multiply", 3, 2), task_call("divide", 2)])
    return run_service_pb2.SubmitRunRequest(request_id=str(uuid.uuid4()), name="python-example", pipeline=pipeline)


def to_json(message):
    return json_format.MessageToJson(message, indent=2)


def print_number(v):
    """Prints 3 rather than 3.0 for integral numbers."""
    if isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer():
        print(int(v))
    elif isinstance(v, (dict, list)) or v is None:
        print(json.dumps(v))
    else:
        print(v)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--address",
        default=os.environ.get("PIPEWRIGHT_ADDRESS", "127.0.0.1:50051"),
        help="server host:port (default: PIPEWRIGHT_ADDRESS, or %(default)s)",
    )
    parser.add_argument("--print-run", action="store_true", help="print the final Run as JSON to stderr")
    parser.add_argument("--dry-run", action="store_true", help="print the SubmitRunRequest as JSON and exit, without connecting")
    args = parser.parse_args(argv)

    request = build_request()
    request.SerializeToString()  # proves the message is complete and encodable
    if args.dry_run:
        print(to_json(request))
        return 0

    try:
        with grpc.insecure_channel(args.address) as channel:
            runs = run_service_pb2_grpc.RunServiceStub(channel)
            submitted = runs.SubmitRun(request, timeout=10)
            run = submitted.run
            print(f"submitted run {run.id}", file=sys.stderr)
            while True:
                waited = runs.WaitRun(
                    run_service_pb2.WaitRunRequest(run_id=run.id, timeout=Duration(seconds=WAIT_SECONDS)),
                    timeout=WAIT_SECONDS + 10,
                )
                run = waited.run
                if waited.done:
                    break
                print(f"run {run.id} still {run_pb2.RunState.Name(run.state)}, waiting...", file=sys.stderr)
    except grpc.RpcError as e:
        print(f"gRPC error: {e.code().name}: {e.details()}", file=sys.stderr)
        return 2

    if args.print_run:
        print(to_json(run), file=sys.stderr)

    outcome = run.outcome
    kind = outcome.WhichOneof("kind")
    if kind == "value":
        print_number(decode_value(outcome.value))
        return 0
    if kind == "error":
        print(f"error: {outcome.error.type}: {outcome.error.message}", file=sys.stderr)
        return 1
    print(f"error: run ended {run_pb2.RunState.Name(run.state)} without an outcome", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
