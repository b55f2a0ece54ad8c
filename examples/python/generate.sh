#!/usr/bin/env bash
# Generates the Python client stubs for Pipewright's client API
# (pipewright.v1: value, pipeline, run, run_service) into examples/python/gen/.
#
# Needs Debian's protoc (protobuf-compiler, 3.21) and grpc_python_plugin
# (protobuf-compiler-grpc). Idempotent; works from any directory.
# The output folder (gen/) is git-ignored.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
proto_root="$repo/proto"
out="$here/gen"

protoc_bin="${PROTOC:-$(command -v protoc || true)}"
plugin="${GRPC_PYTHON_PLUGIN:-$(command -v grpc_python_plugin || true)}"
if [[ -z "$protoc_bin" ]]; then
  echo "generate.sh: protoc not found (apt-get install protobuf-compiler)" >&2
  exit 1
fi
if [[ -z "$plugin" ]]; then
  echo "generate.sh: grpc_python_plugin not found (apt-get install protobuf-compiler-grpc)" >&2
  exit 1
fi

# The well-known types (google/protobuf/duration.proto, timestamp.proto).
# Debian ships them in /usr/include; look next to protoc as well, for other installs.
wkt_include=""
for dir in "${PROTOBUF_INCLUDE:-}" /usr/include "$(dirname "$protoc_bin")/../include" /usr/local/include; do
  if [[ -n "$dir" && -f "$dir/google/protobuf/duration.proto" ]]; then
    wkt_include="$(cd "$dir" && pwd)"
    break
  fi
done
if [[ -z "$wkt_include" ]]; then
  echo "generate.sh: google/protobuf/duration.proto not found (set PROTOBUF_INCLUDE)" >&2
  exit 1
fi

files=(
  pipewright/v1/value.proto
  pipewright/v1/pipeline.proto
  pipewright/v1/run.proto
  pipewright/v1/run_service.proto
)

# Generate into a fresh temporary folder, then swap it in, so that a failed or
# concurrent run never leaves a half-written gen/ behind.
tmp="$(mktemp -d "$here/.gen.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

"$protoc_bin" \
  -I "$proto_root" \
  -I "$wkt_include" \
  --python_out="$tmp" \
  --pyi_out="$tmp" \
  --grpc_python_out="$tmp" \
  --plugin=protoc-gen-grpc_python="$plugin" \
  "${files[@]/#/$proto_root/}"

# Regular packages (not namespace packages), so that `pipewright.v1` cannot be
# shadowed or merged with another `pipewright` folder on sys.path.
touch "$tmp/pipewright/__init__.py" "$tmp/pipewright/v1/__init__.py"
chmod 755 "$tmp"  # mktemp -d makes it 0700

rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "generated Python stubs in $out"
