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

json=0 rounds=20 interval=1500 servers=multinode,node build=1
bench_parse_args "--json --rounds=#1 --interval=#1 --servers= --no-build" "$@"
bench_server_list multinode node

tools=(python3 timeout setsid)
bench_wants node && tools+=(node)
bench_require_tools "${tools[@]}"
bench_workdir

echo_bin="$build_dir/examples/echo"
probe_bin="$build_dir/bench/respawn_probe"
programs=(bench/respawn_probe)
if bench_wants multinode; then
  [ -f "$repo_root/examples/echo.cpp" ] ||
    bench_die "examples/echo.cpp does not exist yet, so there is no multinode server to measure.
  Measure Node alone with: bench/respawn.sh --servers node"
  programs+=(examples/echo)
fi
bench_programs "${programs[@]}"

results="$bench_work/results.jsonl"
declare -A server_pid server_port

start_multinode() {
  bench_start "$bench_work/multinode.log" "$echo_bin" --port "$1" --nodes 1 --no-master-listen --host 127.0.0.1
}
start_node() {
  bench_start "$bench_work/node.log" node "$bench_dir/respawn_node_cluster.js" "$1" 1
}

bench_start_servers
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
  "command=$(bench_json_string "$bench_command")" \
  "servers=[${quoted_servers%,}]" \
  "rounds=$rounds" "interval_ms=$interval" \
  "versions=$(bench_json_string "$(bench_wants node && echo -n "node $(node -v)")")" >"$results"

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
