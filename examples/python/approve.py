#!/usr/bin/python3
"""A human in the loop, from Python over plain gRPC: submits "wait for the
signal `approve`, then multiply its payload by 2", sends the signal with the
payload 21 (as an approval service or a webhook would), and prints the
result (42).

Usage:
    /usr/bin/python3 examples/python/approve.py [--address 127.0.0.1:50051]   (or PIPEWRIGHT_ADDRESS)

Exit codes: 0 success, 1 the run failed, 2 a gRPC error.
"""

import argparse
import os
import sys
import uuid

import submit_pipeline as common  # generates the stubs on first use; the value codec

import grpc
from google.protobuf.duration_pb2 import Duration
from pipewright.v1 import pipeline_pb2, run_service_pb2, run_service_pb2_grpc


def build_request():
    """wait for `approve`, then multiply(<its payload>, 2)."""
    wait = pipeline_pb2.Step(wait=pipeline_pb2.Wait(signal="approve", timeout=Duration(seconds=60)))
    pipeline = pipeline_pb2.Pipeline(steps=[wait, common.task_call("multiply", 2)])
    return run_service_pb2.SubmitRunRequest(request_id=str(uuid.uuid4()), name="python-approval", pipeline=pipeline)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", default=os.environ.get("PIPEWRIGHT_ADDRESS", "127.0.0.1:50051"), help="server host:port")
    args = parser.parse_args(argv)
    try:
        with grpc.insecure_channel(args.address) as channel:
            runs = run_service_pb2_grpc.RunServiceStub(channel)
            run = runs.SubmitRun(build_request(), timeout=10).run
            sent = runs.SignalRun(
                run_service_pb2.SignalRunRequest(run_id=run.id, name="approve", payload=common.json_value(21), signal_id=f"approval-{run.id}"),
                timeout=10,
            )
            print(f"signal approve: {run_service_pb2.SignalDelivery.Name(sent.delivery)}", file=sys.stderr)
            waited = runs.WaitRun(run_service_pb2.WaitRunRequest(run_id=run.id, timeout=Duration(seconds=30)), timeout=40)
    except grpc.RpcError as e:
        print(f"gRPC error: {e.code().name}: {e.details()}", file=sys.stderr)
        return 2
    outcome = waited.run.outcome
    if outcome.WhichOneof("kind") != "value":
        print(f"error: the run did not succeed: {outcome}", file=sys.stderr)
        return 1
    common.print_number(common.decode_value(outcome.value))
    return 0


if __name__ == "__main__":
    sys.exit(main())
