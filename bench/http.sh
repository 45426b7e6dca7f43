#!/usr/bin/env bash
# HTTP hello world: multinode against nginx, h2o and Node's cluster, all running
# at once on their own loopback ports, loaded by wrk in alternation
# (A B C D A B C D ...), keep-alive and pipelined x16. Prints medians, the
# median of the per-round ratios to nginx, each server's RSS after the load, and
# the goals of BENCHMARKS.md. Method: docs/benchmarks.md.
set -euo pipefail
bench_name=http.sh
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'EOF'
usage: bench/http.sh [--json] [--rounds N] [--duration S] [--processes P]
                     [--connections C] [--balancing MODE] [--servers LIST] [--no-build]

  --json           print the results as one JSON object instead of tables
  --rounds N       rounds of alternation, each runs every server once per mode (default 3)
  --duration S     seconds of each wrk run (default 5)
  --processes P    serving processes per server: multinode --nodes P (the master
                   serves too), nginx worker_processes P, h2o num-threads P,
                   Node cluster workers P (default 2)
  --connections C  wrk connections (default 64); wrk runs with one thread (-t1)
  --balancing MODE multinode --balancing shared|reuseport (default: the library's default)
  --servers LIST   comma-separated subset of multinode,nginx,h2o,node,multinode_noheartbeat
                   (default: the first four; multinode_noheartbeat is hello with
                   --heartbeat-timeout 0, to measure what the heartbeat costs);
                   ratios need nginx in the list
  --no-build       use build/release as it is instead of bootstrapping and building

Halfway through each run, ss counts the connections each serving process holds
(the "connections per process" table).

Takes about rounds x servers x 2 x (duration + 1) seconds, plus the build.
EOF
}

json=0 rounds=3 duration=5 processes=2 connections=64 servers=multinode,nginx,h2o,node build=1 balancing=""
depth=16 warmup=2
bench_parse_args "--json --rounds=#1 --duration=#1 --processes=#1 --connections=#1 --balancing= --servers= --no-build" "$@"
case "$balancing" in "" | shared | reuseport) ;; *) bench_die "--balancing wants shared or reuseport, got '$balancing'" ;; esac
bench_server_list multinode nginx h2o node multinode_noheartbeat

tools=(python3 wrk timeout setsid)
bench_wants nginx && tools+=(nginx)
bench_wants h2o && tools+=(h2o)
bench_wants node && tools+=(node)
bench_require_tools "${tools[@]}"
bench_workdir

hello_bin="$build_dir/examples/hello"
if bench_wants multinode || bench_wants multinode_noheartbeat; then
  if [ ! -f "$repo_root/examples/hello.cpp" ]; then
    bench_die "examples/hello.cpp does not exist yet, so there is no multinode server to measure.
  Measure the peers alone with: bench/http.sh --servers nginx,h2o,node"
  fi
  bench_programs examples/hello
fi

results="$bench_work/results.jsonl"

# --- the servers ------------------------------------------------------------
# Each start_<server> starts it on port $1; server_pid[<server>] is its leader.
declare -A server_pid server_port server_children

start_multinode() {
  bench_start "$bench_work/multinode.log" "$hello_bin" --port "$1" --nodes "$processes" --host 127.0.0.1 \
    ${balancing:+--balancing "$balancing"}
}

# The same without the heartbeat (Options::heartbeat_timeout 0): its cost is the ratio of the two.
start_multinode_noheartbeat() {
  bench_start "$bench_work/multinode_noheartbeat.log" "$hello_bin" --port "$1" --nodes "$processes" \
    --host 127.0.0.1 --heartbeat-timeout 0 ${balancing:+--balancing "$balancing"}
}

start_nginx() {
  bench_start_nginx "$bench_work/nginx.log" "$bench_work/nginx" "$1" "$processes"
}

start_h2o() {
  local dir="$bench_work/h2o"
  mkdir -p "$dir"
  printf 'Hello, World!\n' >"$dir/hello.txt"
  chmod 755 "$bench_work" "$dir" && chmod 644 "$dir/hello.txt"  # h2o drops to nobody when started as root
  cat >"$dir/h2o.conf" <<EOF
# The peer configuration of BENCHMARKS.md: $processes threads, a static 14-byte file.
listen:
  host: 127.0.0.1
  port: $1
num-threads: $processes
error-log: $dir/error.log
hosts:
  default:
    paths:
      /:
        file.file: $dir/hello.txt
EOF
  bench_start "$bench_work/h2o.log" h2o -c "$dir/h2o.conf"
}

start_node() {
  bench_start "$bench_work/node.log" node "$bench_dir/http_node_cluster.js" "$1" "$processes"
}

# How many child processes each server has once it is up.
expected_children() {
  case "$1" in
    multinode | multinode_noheartbeat) echo $((processes - 1)) ;;
    nginx | node) echo "$processes" ;;
    h2o) echo 0 ;;
  esac
}

# Writes one "process" line per process of the server: role, whether it serves, RSS.
record_processes() {
  local server=$1 leader=${server_pid[$1]} child
  case "$server" in
    multinode | multinode_noheartbeat)  # the master serves too (--nodes counts it)
      printf '{"kind":"process","server":"%s","role":"master","serves":true,"pid":%d,"rss_kb":%d}\n' \
        "$server" "$leader" "$(bench_rss_kb "$leader")" ;;
    nginx)
      printf '{"kind":"process","server":"%s","role":"master","serves":false,"pid":%d,"rss_kb":%d}\n' \
        "$server" "$leader" "$(bench_rss_kb "$leader")" ;;
    node)  # round-robin scheduling: the primary accepts and hands connections over
      printf '{"kind":"process","server":"%s","role":"primary","serves":false,"pid":%d,"rss_kb":%d}\n' \
        "$server" "$leader" "$(bench_rss_kb "$leader")" ;;
    h2o)  # one process, its threads serve
      printf '{"kind":"process","server":"%s","role":"worker","serves":true,"pid":%d,"rss_kb":%d}\n' \
        "$server" "$leader" "$(bench_rss_kb "$leader")" ;;
  esac
  for child in $(bench_children "$leader"); do
    if [ "$server" = h2o ]; then  # its crash handler (a perl script), not a server
      printf '{"kind":"process","server":"%s","role":"crash-handler","serves":false,"pid":%d,"rss_kb":%d}\n' \
        "$server" "$child" "$(bench_rss_kb "$child")"
      continue
    fi
    printf '{"kind":"process","server":"%s","role":"worker","serves":true,"pid":%d,"rss_kb":%d}\n' \
      "$server" "$child" "$(bench_rss_kb "$child")"
  done
}

bench_start_servers
for server in "${server_list[@]}"; do
  answer=$(bench_py wait-http "${server_port[$server]}" 20) ||
    bench_die "$server did not come up on port ${server_port[$server]}; its output:
$(tail -n 20 "$bench_work/$server.log")"
  want=$(expected_children "$server")
  for _ in $(seq 100); do
    [ "$(bench_children "${server_pid[$server]}" | wc -l)" -ge "$want" ] && break
    sleep 0.1
  done
  [ "$(bench_children "${server_pid[$server]}" | wc -l)" -ge "$want" ] ||
    bench_die "$server has not started its $want worker processes within 10 s"
  bench_log "$server: pid ${server_pid[$server]}, port ${server_port[$server]}, answers \"$answer\""
  server_children[$server]=$(bench_children "${server_pid[$server]}" | sort -n | paste -sd' ')
done

# --- the load ---------------------------------------------------------------

# run_wrk SERVER MODE ROUND SECONDS: one wrk run; appends a "run" line unless ROUND is 0 (warm-up).
run_wrk() {
  local server=$1 mode=$2 round=$3 seconds=$4 depth_now=1 output line sampler shares_file
  [ "$mode" = pipelined ] && depth_now=$depth
  shares_file="$bench_work/shares-$server-$mode-$round.json"
  # Halfway through: which process holds how many of wrk's connections.
  (sleep "$(awk -v s="$seconds" 'BEGIN { print s / 2 }')" && bench_shares "${server_port[$server]}" >"$shares_file") &
  sampler=$!
  if ! output=$(timeout --foreground -k 5 $((seconds + 30)) \
    wrk -t1 -c"$connections" -d"${seconds}s" --timeout 5s -s "$bench_dir/pipeline.lua" \
    "http://127.0.0.1:${server_port[$server]}/" -- "$depth_now" 2>&1); then
    bench_die "wrk against $server ($mode) failed:
$output"
  fi
  line=$(grep '^BENCH_RESULT ' <<<"$output") ||
    bench_die "wrk against $server ($mode) printed no BENCH_RESULT line:
$output"
  wait "$sampler" || true
  local shares='{}'
  [ -s "$shares_file" ] && shares=$(cat "$shares_file")
  [ "$round" = 0 ] && return 0
  printf '{"kind":"run","server":"%s","mode":"%s","round":%d,"wrk":%s,"shares":%s}\n' \
    "$server" "$mode" "$round" "${line#BENCH_RESULT }" "$shares" >>"$results"
  bench_log "round $round/$rounds $mode $server: $(grep -o 'Requests/sec: *[0-9.]*' <<<"$output" | tr -s ' '); connections per process $shares"
}

quoted_servers=$(printf '"%s",' "${server_list[@]}")
bench_config_line \
  "command=$(bench_json_string "$bench_command")" \
  "servers=[${quoted_servers%,}]" \
  "processes=$processes" "balancing=$(bench_json_string "${balancing:-default}")" "rounds=$rounds" "duration_s=$duration" "connections=$connections" "depth=$depth" \
  "ports=$(bench_json_string "$(for s in "${server_list[@]}"; do printf '%s:%s ' "$s" "${server_port[$s]}"; done)")" \
  "versions=$(bench_json_string "$(
    bench_wants nginx && nginx -v 2>&1 | tr '\n' ' '
    bench_wants h2o && h2o -v 2>&1 | head -n 1 | tr '\n' ' '
    bench_wants node && echo -n "node $(node -v) "
    wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2
  )")" >"$results"

bench_log "warming up every server for ${warmup} s per mode"
for server in "${server_list[@]}"; do
  run_wrk "$server" keepalive 0 "$warmup"
  run_wrk "$server" pipelined 0 "$warmup"
done
for round in $(seq "$rounds"); do
  for mode in keepalive pipelined; do
    for server in "${server_list[@]}"; do
      run_wrk "$server" "$mode" "$round" "$duration"
    done
  done
done

for server in "${server_list[@]}"; do
  record_processes "$server" >>"$results"
  # A worker that died under load and was replaced must not pass unnoticed.
  now=$(bench_children "${server_pid[$server]}" | sort -n | paste -sd' ')
  if [ "$now" != "${server_children[$server]}" ]; then
    printf '{"kind":"event","server":"%s","event":%s}\n' "$server" \
      "$(bench_json_string "its child processes changed during the run: ${server_children[$server]:-none} before, ${now:-none} after")" >>"$results"
  fi
done

if [ "$json" = 1 ]; then
  bench_py report-http "$results" --json
else
  bench_py report-http "$results"
fi
