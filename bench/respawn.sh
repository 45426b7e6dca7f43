#!/usr/bin/env bash
# Respawn time: kill -9 of a worker until its replacement greets a new
# connection, for multinode (examples/echo, one worker, the master only
# supervises) and for Node's cluster module (a primary that re-forks), measured
# in the same run in alternation by bench/respawn_probe.cpp; plus the RSS of
# each worker. Method: docs/benchmarks.md.
set -euo pipefail
bench_name=respawn.sh
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'EOF'
usage: bench/respawn.sh [--json] [--rounds N] [--interval MS] [--servers LIST] [--no-build]

  --json          print the results as one JSON object instead of tables
  --rounds N      kills per server, alternating between the servers (default 20)
  --interval MS   a worker is killed only once it has been up this long (default
                  1500): multinode restarts a worker that dies within min_uptime
                  (1000 ms) after a back-off, which is not what is measured here
  --servers LIST  comma-separated subset of multinode,node (default: both)
  --no-build      use build/release as it is instead of bootstrapping and building

Takes about rounds x interval plus the build.
EOF
}

command_line="bench/respawn.sh $*"
json=0 rounds=20 interval=1500 servers=multinode,node build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --json) json=1 ;;
    --rounds) rounds=${2:?--rounds wants a value}; shift ;;
    --interval) interval=${2:?--interval wants a value}; shift ;;
    --servers) servers=${2:?--servers wants a value}; shift ;;
    --no-build) build=0 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; bench_die "unknown argument '$1'" ;;
  esac
  shift
done
bench_require_count --rounds "$rounds" 1
bench_require_count --interval "$interval" 1

IFS=, read -r -a server_list <<<"$servers"
[ "${#server_list[@]}" -gt 0 ] || bench_die "--servers is empty"
for server in "${server_list[@]}"; do
  case "$server" in
    multinode | node) ;;
    *) bench_die "unknown server '$server' in --servers (use multinode, node)" ;;
  esac
done
wants() { [[ ",$servers," == *",$1,"* ]]; }

tools=(python3 timeout setsid)
wants node && tools+=(node)
bench_require_tools "${tools[@]}"
bench_workdir

echo_bin="$build_dir/examples/echo"
probe_bin="$build_dir/bench/respawn_probe"
targets=(respawn_probe)
if wants multinode; then
  [ -f "$repo_root/examples/echo.cpp" ] ||
    bench_die "examples/echo.cpp does not exist yet, so there is no multinode server to measure.
  Measure Node alone with: bench/respawn.sh --servers node"
  targets+=(echo)
fi
if [ "$build" = 1 ]; then
  bench_build "${targets[@]}"
fi
[ -x "$probe_bin" ] || bench_die "$probe_bin is missing: build it with
  cmake --preset release && cmake --build --preset release --target respawn_probe"
if wants multinode; then
  [ -x "$echo_bin" ] || bench_die "$echo_bin is missing: build it with
  cmake --preset release && cmake --build --preset release --target echo"
fi

results="$bench_work/results.jsonl"
read -r -a ports <<<"$(bench_py free-ports 2)"
declare -A server_pid server_port

start_multinode() {
  bench_start "$bench_work/multinode.log" "$echo_bin" --port "$1" --nodes 1 --no-master-listen --host 127.0.0.1
}
start_node() {
  bench_start "$bench_work/node.log" node "$bench_dir/respawn_node_cluster.js" "$1" 1
}

index=0
for server in "${server_list[@]}"; do
  server_port[$server]=${ports[$index]}
  index=$((index + 1))
  "start_$server" "${server_port[$server]}"
  server_pid[$server]=$bench_last_pid
done
probe_targets=()
for server in "${server_list[@]}"; do
  worker=$(bench_py wait-greeting "${server_port[$server]}" 20) ||
    bench_die "$server did not greet on port ${server_port[$server]}; its output:
$(tail -n 20 "$bench_work/$server.log")"
  bench_log "$server: supervisor pid ${server_pid[$server]}, worker pid $worker, port ${server_port[$server]}"
  probe_targets+=("$server=${server_port[$server]}")
done

quoted_servers=$(printf '"%s",' "${server_list[@]}")
bench_config_line \
  "command=$(bench_json_string "$command_line")" \
  "servers=[${quoted_servers%,}]" \
  "rounds=$rounds" "interval_ms=$interval" \
  "versions=$(bench_json_string "$(wants node && echo -n "node $(node -v)")")" >"$results"

# The probe bounds each wait by its own --timeout-ms; this bounds the whole.
probe_limit=$((rounds * ${#server_list[@]} * (interval + 10000) / 1000 + 60))
probe_status=0
timeout --foreground -k 5 "$probe_limit" \
  "$probe_bin" --kills "$rounds" --interval-ms "$interval" --timeout-ms 10000 "${probe_targets[@]}" \
  >>"$results" || probe_status=$?

# RSS of the worker serving now (the last replacement) and of its supervisor.
for server in "${server_list[@]}"; do
  leader=${server_pid[$server]}
  role=$([ "$server" = node ] && echo primary || echo master)
  printf '{"kind":"process","server":"%s","role":"%s","serves":false,"pid":%d,"rss_kb":%d}\n' \
    "$server" "$role" "$leader" "$(bench_rss_kb "$leader")" >>"$results"
  if worker=$(bench_py wait-greeting "${server_port[$server]}" 10); then
    printf '{"kind":"process","server":"%s","role":"worker","serves":true,"pid":%d,"rss_kb":%d}\n' \
      "$server" "$worker" "$(bench_rss_kb "$worker")" >>"$results"
  fi
done

if [ "$json" = 1 ]; then
  bench_py report-respawn "$results" --json
else
  bench_py report-respawn "$results"
fi
if [ "$probe_status" -ne 0 ]; then
  bench_die "respawn_probe exited with status $probe_status: some kills were not followed by a replacement (see above)"
fi
