#!/usr/bin/env bash
# Builds multinode and starts the demo: the chat room (examples/chat) on every core,
# its page and WebSocket served by every process, the room replicated over the mesh.
#   scripts/demo.sh [--port N] [--nodes N] ...   (flags go to examples/chat)
# Then open http://127.0.0.1:8080/ in two tabs. Stop it with Ctrl-C (a graceful stop).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh build
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target chat hello echo
if [ "$#" -eq 0 ]; then set -- --port 8080 --nodes "$(nproc)"; fi
port=8080
previous=""
for arg in "$@"; do
  if [ "$previous" = --port ]; then port="$arg"; fi
  previous="$arg"
done
echo "demo: build/release/examples/chat $*   (open http://127.0.0.1:$port/ in two tabs)" >&2
exec build/release/examples/chat "$@"
