#!/usr/bin/env bash
# Regenerates the Python protobuf/gRPC modules from renderer.proto
# (grpcio-tools; run from anywhere).  The generated files are committed.
set -euo pipefail
cd "$(dirname "$0")/../.."
python -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. \
    --pyi_out=. third_party/renderer_bridge/renderer.proto
