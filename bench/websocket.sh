#!/usr/bin/env bash
# WebSocket: multinode against Node's `ws` 8 on cluster (and a Beast-only
# reference for idle and echo), in one run, loaded by
# bench/websocket_load (one epoll process, RFC 6455 client framing):
#   idle    RSS per idle connection: every process of a fresh server summed before
#           and while --idle connections are open
#   echo    --connections connections, 64-byte messages, --pipeline in flight each
#           (16; the generator writes what one read answers in one write): messages/s
#   fanout  --clients clients, one of them sends a timestamped message every 10 ms,
#           the server broadcasts it to every other client of every process:
#           delivery latency p50/p99 and deliveries/s
# Servers in alternation (A B A B ...) for --rounds rounds per scenario; prints
# medians, the median of the per-round ratios multinode/Node, and the goals of
# issue #9. A round that fails for one server (its load could not open every
# connection, e.g. Node running out of memory at 10,000 handshakes, or ended in
# an error) is recorded as failed for that server, the server is restarted, and
# the run goes on; the report lists the failed rounds. Method: docs/benchmarks.md
# ("WebSocket").
set -euo pipefail
bench_name=websocket.sh
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'EOF'
usage: bench/websocket.sh [--json] [--rounds N] [--duration S] [--processes P]
                          [--connections C] [--pipeline K] [--clients LIST]
                          [--interval-ms MS] [--idle N] [--scenarios LIST]
                          [--servers LIST] [--deflate] [--no-build]

  --json            print the results as one JSON object instead of tables
  --rounds N        rounds of alternation per scenario (default 3)
  --duration S      seconds of each echo run and of each fan-out's sending (default 5)
  --processes P     serving processes per server: multinode --nodes P (the master
                    serves too), Node cluster workers P (default 2)
  --connections C   echo connections (default 64)
  --pipeline K      echo messages in flight per connection (default 16: a throughput
                    measure keeps the pipe full, as wrk's pipelined HTTP run does;
                    1 measures the round trip of each message alone)
  --clients LIST    comma-separated fan-out client counts (default 1000,10000)
  --interval-ms MS  fan-out: one message every MS ms (default 10); 10,000 clients
                    at 10 ms ask for 1M deliveries/s
  --idle N          idle connections for the RSS measure (default 10000)
  --scenarios LIST  comma-separated subset of idle,echo,fanout (default all)
  --servers LIST    comma-separated subset of multinode,node,beast (default all);
                    ratios need node; beast (bench/websocket_beast, Beast alone)
                    is a reference for idle and echo, it does not broadcast
  --deflate         idle and echo with permessage-deflate on both sides: the load offers
                    it (no context takeover either way) and compresses every message,
                    the servers compress every answer (multinode websocket_echo
                    --deflate-threshold 0, ws perMessageDeflate threshold 0); beast
                    is left out, the fan-out runs uncompressed
  --no-build        use build/release as it is instead of bootstrapping and building

Takes about rounds x servers x (idle: 10 s + echo: duration + 2 s + fan-out:
duration + 4 s per client count), plus the build.
EOF
}

json=0 rounds=3 duration=5 processes=2 connections=64 pipeline=16 clients=1000,10000 interval_ms=10 idle=10000
scenarios=idle,echo,fanout servers=multinode,node,beast build=1 deflate=0
size=64 warmup=1 drain=5 settle=2
bench_parse_args "--json --rounds=#1 --duration=#1 --processes=#1 --connections=#1 --pipeline=#1 --clients= \
  --interval-ms=#1 --idle=#1 --scenarios= --servers= --deflate --no-build" "$@"
bench_server_list multinode node beast
if [ "$deflate" = 1 ]; then
  kept=()
  for server in "${server_list[@]}"; do [ "$server" = beast ] || kept+=("$server"); done
  [ "${#kept[@]}" -gt 0 ] || bench_die "--deflate leaves no server (beast has no permessage-deflate here)"
  [ "${#kept[@]}" = "${#server_list[@]}" ] || bench_log "--deflate: beast left out (no permessage-deflate)"
  server_list=("${kept[@]}")
fi
# The load's flags for idle and echo.
load_deflate=()
[ "$deflate" = 1 ] && load_deflate=(--deflate)

IFS=, read -r -a scenario_list <<<"$scenarios"
for scenario in "${scenario_list[@]}"; do
  case "$scenario" in idle | echo | fanout) ;; *) bench_die "unknown scenario '$scenario' in --scenarios (use idle, echo, fanout)" ;; esac
done
wants_scenario() { [[ ",$scenarios," == *",$1,"* ]]; }
IFS=, read -r -a client_list <<<"$clients"
for count in "${client_list[@]}"; do bench_require_count "--clients" "$count" 2; done

tools=(python3 timeout setsid)
bench_wants node && tools+=(node)
bench_require_tools "${tools[@]}"
bench_workdir

# Every connection is a file descriptor in the load generator and in one server
# process; the servers inherit the limit from here.
most=$connections
if wants_scenario idle && [ "$idle" -gt "$most" ]; then most=$idle; fi
if wants_scenario fanout; then
  for count in "${client_list[@]}"; do [ "$count" -gt "$most" ] && most=$count; done
fi
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ]; then
  ulimit -n $((most + 1000))
elif [ "$hard" -lt $((most + 1000)) ]; then
  bench_die "the hard limit on open files (ulimit -Hn) is $hard; $((most + 1000)) are needed for $most connections: raise it or lower --idle/--clients"
else
  ulimit -n "$hard"
fi

load_bin="$build_dir/bench/websocket_load"
programs=(bench/websocket_load)
if bench_wants multinode; then
  for source in examples/websocket_echo.cpp bench/websocket_fanout.cpp; do
    [ -f "$repo_root/$source" ] || bench_die "$source does not exist yet, so there is no multinode server to measure.
  Measure Node alone with: bench/websocket.sh --servers node"
  done
  programs+=(examples/websocket_echo bench/websocket_fanout)
fi
bench_wants beast && programs+=(bench/websocket_beast)
bench_programs "${programs[@]}"
if bench_wants node && [ ! -f "$repo_root/node_modules/ws/package.json" ]; then
  bench_die "node_modules/ws is missing: run scripts/bootstrap.sh bench (npm ci from package-lock.json)"
fi

results="$bench_work/results.jsonl"

# --- the servers ------------------------------------------------------------
# start_<server> PORT starts the server of the current $kind (echo | broadcast).
declare -A server_pid server_port
kind="echo"

start_multinode() {
  if [ "$kind" = echo ]; then
    local compression=()
    [ "$deflate" = 1 ] && compression=(--deflate-threshold 0)
    bench_start "$bench_work/multinode-$kind.log" "$build_dir/examples/websocket_echo" \
      --port "$1" --nodes "$processes" --host 127.0.0.1 "${compression[@]}"
  else  # reuseport spreads the clients over the processes as evenly as Node's round-robin
    bench_start "$bench_work/multinode-$kind.log" "$build_dir/bench/websocket_fanout" \
      --port "$1" --nodes "$processes" --host 127.0.0.1 --balancing reuseport
  fi
}

start_beast() {
  bench_start "$bench_work/beast-$kind.log" "$build_dir/bench/websocket_beast" \
    --port "$1" --nodes "$processes" --host 127.0.0.1
}

start_node() {
  local compression=()
  [ "$deflate" = 1 ] && [ "$kind" = echo ] && compression=(--deflate-threshold 0)
  bench_start "$bench_work/node-$kind.log" node "$bench_dir/websocket_node_cluster.js" \
    --mode "$kind" --port "$1" --nodes "$processes" --host 127.0.0.1 "${compression[@]}"
}

expected_children() {
  case "$1" in
    multinode | beast) echo $((processes - 1)) ;;
    node) echo "$processes" ;;
  esac
}

# Starts every server of --servers as $kind and waits until each has all its
# processes and completes a WebSocket handshake.
start_servers() {
  local server want
  bench_start_servers
  for server in "${server_list[@]}"; do
    want=$(expected_children "$server")
    for _ in $(seq 200); do
      [ "$(bench_children "${server_pid[$server]}" | wc -l)" -ge "$want" ] && break
      sleep 0.1
    done
    [ "$(bench_children "${server_pid[$server]}" | wc -l)" -ge "$want" ] ||
      bench_die "$server ($kind) has not started its $want worker processes within 20 s; its output:
$(tail -n 20 "$bench_work/$server-$kind.log")"
    if [ "$server" = node ]; then
      for _ in $(seq 200); do grep -q '^ready' "$bench_work/node-$kind.log" && break; sleep 0.1; done
      grep -q '^ready' "$bench_work/node-$kind.log" ||
        bench_die "node ($kind) did not print ready within 20 s; its output:
$(tail -n 20 "$bench_work/node-$kind.log")"
    fi
    timeout -k 5 30 "$load_bin" probe --port "${server_port[$server]}" --timeout 20 >/dev/null ||
      bench_die "$server ($kind) took no WebSocket handshake on port ${server_port[$server]}; its output:
$(tail -n 20 "$bench_work/$server-$kind.log")"
    bench_log "$server ($kind): pid ${server_pid[$server]}, port ${server_port[$server]}"
  done
  sleep 0.5  # the workers' handshakes came from one of them: let every process settle
}

stop_servers() {
  local server
  for server in "${server_list[@]}"; do
    bench_stop "${server_pid[$server]}" || bench_log "$server ($kind) had to be killed"
  done
}

# After a failed round: the server of $server_name alone is stopped and started
# again (on a new port), so that its next round starts from a sane state.
restart_server() {
  local saved=("${server_list[@]}")
  bench_stop "${server_pid[$server_name]}" || bench_log "$server_name ($kind) had to be killed"
  server_list=("$server_name")
  start_servers
  server_list=("${saved[@]}")
}

# record_failure KIND ROUND EXTRA_FIELDS: a round of $server_name that failed
# ($load_error says why) goes into the results as such.
record_failure() {
  printf '{"kind":"%s","server":"%s","round":%d,%s"failed":%s}\n' "$1" "$server_name" "$2" "$3" \
    "$(bench_json_string "$load_error")" >>"$results"
  bench_log "round $2/$rounds $1 $server_name FAILED (the run goes on): $load_error"
}

# Every process of a server's group: [{"pid":..,"rss_kb":..,"sockets":..,
# "cpu_ticks":..,"wait_ms":..}, ...]: cpu_ticks is user + system time in clock
# ticks (getconf CLK_TCK), wait_ms the time it spent runnable but waiting for a
# CPU (/proc/PID/schedstat): a latency that the servers' wait explains is the
# machine's, not the server's.
clock_ticks=$(getconf CLK_TCK 2>/dev/null || echo 100)
processes_json() {
  local pid out="" cpu wait
  for pid in $(bench_group_members "$1" | sort -n); do
    cpu=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}') || cpu=0
    wait=$(awk '{printf "%d", $2 / 1000000}' "/proc/$pid/schedstat" 2>/dev/null) || wait=0
    out+=$(printf '{"pid":%d,"rss_kb":%d,"sockets":%d,"cpu_ticks":%d,"wait_ms":%d},' "$pid" "$(bench_rss_kb "$pid")" \
      "$(find "/proc/$pid/fd" -lname 'socket:*' 2>/dev/null | wc -l)" "${cpu:-0}" "${wait:-0}")
  done
  printf '[%s]' "${out%,}"
}

# --- the load ---------------------------------------------------------------
# start_load NAME BOUND_S ARGS...: websocket_load in the background, in its own
# process group (stopped at exit like the servers), its output in $load_log.
start_load() {
  local name=$1 bound=$2
  shift 2
  load_log="$bench_work/load-$name.log"
  bench_start "$load_log" timeout -k 5 "$bound" "$load_bin" "$@"
  load_pid=$bench_last_pid
}

# False, with load_error set, when the load did not open its connections in time
# (or ended before): the load is then stopped.
wait_connected() {
  local limit=$1
  for _ in $(seq $((limit * 10))); do
    grep -q '"event":"connected"' "$load_log" && return 0
    kill -0 "$load_pid" 2>/dev/null || break
    sleep 0.1
  done
  load_error="websocket_load did not open its connections within $limit s: $(tail -n 3 "$load_log" | tr '\n' ' ')"
  kill -TERM "$load_pid" 2>/dev/null || true
  wait "$load_pid" 2>/dev/null || true
  bench_stop "$load_pid" || true
  return 1
}

# Waits for the load to end and sets load_line to its result (not in a
# subshell: the load is this shell's child); false, with load_error set, when it
# failed or printed no result.
finish_load() {
  local status=0
  wait "$load_pid" || status=$?
  bench_stop "$load_pid" || true
  if [ "$status" != 0 ]; then
    load_error="websocket_load failed (exit $status): $(tail -n 3 "$load_log" | tr '\n' ' ')"
    return 1
  fi
  load_line=$(grep '^{"mode"' "$load_log" | tail -n 1) || true
  if [ -z "$load_line" ]; then
    load_error="websocket_load printed no result: $(tail -n 3 "$load_log" | tr '\n' ' ')"
    return 1
  fi
}

connect_bound=$((30 + most / 500))  # seconds to open the connections, generously

run_idle() {
  local round=$1 before after
  before=$(processes_json "${server_pid[$server_name]}")
  start_load "idle-$server_name-$round" $((connect_bound + 180)) idle --port "${server_port[$server_name]}" \
    --connections "$idle" --hold 150 --connect-timeout "$connect_bound" "${load_deflate[@]}"
  if ! wait_connected "$connect_bound"; then
    record_failure idle "$round" "\"connections\":$idle,"
    return 0  # the server is stopped after each idle round anyway
  fi
  sleep "$settle"  # let the server finish the work of the last handshakes
  after=$(processes_json "${server_pid[$server_name]}")
  kill -TERM "$load_pid" 2>/dev/null || true
  if ! finish_load; then
    record_failure idle "$round" "\"connections\":$idle,"
    return 0
  fi
  printf '{"kind":"idle","server":"%s","round":%d,"connections":%d,"before":%s,"after":%s,"load":%s}\n' \
    "$server_name" "$round" "$idle" "$before" "$after" "$load_line" >>"$results"
  bench_log "round $round/$rounds idle $server_name: $(python3 -c 'import json,sys
b=sum(p["rss_kb"] for p in json.loads(sys.argv[1])); a=sum(p["rss_kb"] for p in json.loads(sys.argv[2]))
print(f"{(a-b)*1024/int(sys.argv[3]):.0f} bytes per connection")' "$before" "$after" "$idle")"
}

run_echo() {
  local round=$1 seconds=$2 warm=$3 before after
  before=$(processes_json "${server_pid[$server_name]}")
  start_load "echo-$server_name-$round" $((seconds + warm + connect_bound + 30)) echo \
    --port "${server_port[$server_name]}" --connections "$connections" --size "$size" --pipeline "$pipeline" \
    --duration "$seconds" --warmup "$warm" --connect-timeout "$connect_bound" "${load_deflate[@]}"
  if ! finish_load; then
    record_failure echo "$round" ""
    restart_server
    return 0
  fi
  after=$(processes_json "${server_pid[$server_name]}")
  [ "$round" = 0 ] && return 0
  printf '{"kind":"echo","server":"%s","round":%d,"clock_ticks":%d,"before":%s,"after":%s,"load":%s}\n' \
    "$server_name" "$round" "$clock_ticks" "$before" "$after" "$load_line" >>"$results"
  bench_log "round $round/$rounds echo $server_name: $(grep -o '"messages_per_s":[0-9.]*' <<<"$load_line")"
}

run_fanout() {
  local round=$1 count=$2 before during after
  before=$(processes_json "${server_pid[$server_name]}")
  start_load "fanout-$count-$server_name-$round" $((duration + warmup + drain + connect_bound + 30)) fanout \
    --port "${server_port[$server_name]}" --connections "$count" --size "$size" --interval-ms "$interval_ms" \
    --duration "$duration" --warmup "$warmup" --drain "$drain" --connect-timeout "$connect_bound"
  if ! wait_connected "$connect_bound"; then
    record_failure fanout "$round" "\"clients\":$count,"
    restart_server
    return 0
  fi
  during=$(processes_json "${server_pid[$server_name]}")
  if ! finish_load; then
    record_failure fanout "$round" "\"clients\":$count,"
    restart_server
    return 0
  fi
  after=$(processes_json "${server_pid[$server_name]}")
  printf '{"kind":"fanout","server":"%s","round":%d,"clients":%d,"clock_ticks":%d,"before":%s,"during":%s,"after":%s,"load":%s}\n' \
    "$server_name" "$round" "$count" "$clock_ticks" "$before" "$during" "$after" "$load_line" >>"$results"
  bench_log "round $round/$rounds fan-out $count $server_name: $(grep -o '"p99_us":[0-9]*' <<<"$load_line"), $(grep -o '"delivered_per_s":[0-9.]*' <<<"$load_line")"
}

quoted_servers=$(printf '"%s",' "${server_list[@]}")
quoted_scenarios=$(printf '"%s",' "${scenario_list[@]}")
bench_config_line \
  "command=$(bench_json_string "$bench_command")" \
  "servers=[${quoted_servers%,}]" "scenarios=[${quoted_scenarios%,}]" \
  "processes=$processes" "rounds=$rounds" "duration_s=$duration" "connections=$connections" "pipeline=$pipeline" \
  "clients=[$clients]" "idle=$idle" "size=$size" "deflate=$([ "$deflate" = 1 ] && echo true || echo false)" "interval_ms=$interval_ms" "warmup_s=$warmup" "drain_s=$drain" \
  "versions=$(bench_json_string "$(
    bench_wants node && echo -n "node $(node -v), ws $(node -p "require('$repo_root/node_modules/ws/package.json').version")"
  )")" >"$results"

# Idle first, on fresh servers each round: memory a previous load freed and kept
# in the allocator would hide what a new connection costs.
if wants_scenario idle; then
  kind="echo"
  for round in $(seq "$rounds"); do
    for server_name in "${server_list[@]}"; do
      saved=("${server_list[@]}")
      server_list=("$server_name")
      start_servers
      run_idle "$round"
      stop_servers
      server_list=("${saved[@]}")
    done
  done
fi

if wants_scenario echo; then
  kind="echo"
  start_servers
  for server_name in "${server_list[@]}"; do run_echo 0 1 0; done  # warm-up, not recorded
  for round in $(seq "$rounds"); do
    for server_name in "${server_list[@]}"; do run_echo "$round" "$duration" "$warmup"; done
  done
  stop_servers
fi

if wants_scenario fanout; then
  kind=broadcast
  saved=("${server_list[@]}")
  server_list=()
  for server_name in "${saved[@]}"; do [ "$server_name" = beast ] || server_list+=("$server_name"); done
  if [ "${#server_list[@]}" -gt 0 ]; then
    start_servers
    for count in "${client_list[@]}"; do
      for round in $(seq "$rounds"); do
        for server_name in "${server_list[@]}"; do run_fanout "$round" "$count"; done
      done
    done
    stop_servers
  fi
  server_list=("${saved[@]}")
fi

if [ "$json" = 1 ]; then
  python3 "$bench_dir/websocket_report.py" "$results" --json
else
  python3 "$bench_dir/websocket_report.py" "$results"
fi
