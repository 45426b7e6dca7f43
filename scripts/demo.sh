#!/usr/bin/env bash
# Builds multinode and starts the demo: the `hello` HTTP server on every core.
#   scripts/demo.sh [--port N] [--nodes N] ...   (flags go to examples/hello)
# Then: curl http://127.0.0.1:8080/   Stop it with Ctrl-C (a graceful stop).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh build
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target hello echo
if [ "$#" -eq 0 ]; then set -- --port 8080 --nodes "$(nproc)"; fi
port=8080
previous=""
for arg in "$@"; do
  if [ "$previous" = --port ]; then port="$arg"; fi
  previous="$arg"
done
echo "demo: build/release/examples/hello $*   (try: curl http://127.0.0.1:$port/)" >&2
exec build/release/examples/hello "$@"
