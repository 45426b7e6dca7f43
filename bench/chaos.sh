#!/usr/bin/env bash
# Chaos under load: wrk keeps 64 keep-alive connections busy while, every few
# seconds, one of three things happens to the server: kill -9 of a random worker,
# kill -STOP of one (a hung worker), or a rolling restart (kill -HUP of the
# master). Prints the failed requests against the connections the killed and
# hung workers held (ss, just before each event), and how long a hung worker took
# to be found and replaced. multinode (examples/hello, the master only
# supervises, --heartbeat-timeout) against nginx, which has no hung-worker
# detection. Method: docs/benchmarks.md, "Chaos".
set -euo pipefail
bench_name=chaos.sh
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'EOF'
usage: bench/chaos.sh [--duration S] [--interval S] [--heartbeat-timeout MS]
                      [--seed N] [--servers LIST] [--no-build]

  --duration S            seconds of the wrk run per server (default 30)
  --interval S            seconds between two events (default 2)
  --heartbeat-timeout MS  multinode's heartbeat_timeout (default 1000)
  --seed N                seed of the random choices (default 1): the same seed
                          gives both servers the same sequence of events
  --servers LIST          comma-separated subset of multinode,nginx (default: both)
  --no-build              use build/release as it is instead of bootstrapping and building

Each server: wrk -t1 -c64 -dS --timeout 2s, keep-alive, 3 workers. At
t = interval, 2 x interval, ... (while the load runs) one event, in turn:
  kill9    kill -9 of a random live worker
  stop     kill -STOP of a random live worker (never continued while the load runs;
           multinode kills and replaces it after heartbeat_timeout)
  restart  kill -HUP of the master (multinode: rolling restart; nginx: reload)
The order of the three is shuffled in every group of three by the seed.
Failed requests = wrk's connect + read + write + timeout + status errors.
Goal (multinode): failed <= connections held by the killed and hung workers
(restarts lose none), and each hung worker gone and replaced within
heartbeat_timeout + 1 s. Takes about servers x (S + 5) seconds.
EOF
}

duration=30 interval=2 heartbeat_timeout=1000 seed=1 servers=multinode,nginx build=1
connections=64 wrk_timeout_s=2 workers=3
bench_parse_args "--duration=#1 --interval=#1 --heartbeat-timeout=#1 --seed=#0 --servers= --no-build" "$@"
bench_server_list multinode nginx

tools=(python3 wrk timeout setsid ss awk)
bench_wants nginx && tools+=(nginx)
bench_require_tools "${tools[@]}"
[ -n "${EPOCHREALTIME:-}" ] || bench_die "bash 5 or newer is needed (EPOCHREALTIME)"
bench_workdir

hello_bin="$build_dir/examples/hello"
bench_wants multinode && bench_programs examples/hello
results="$bench_work/results.jsonl"
: >"$results"

now_ms() {
  local t=$EPOCHREALTIME
  echo $((10#${t/[.,]/} / 1000))
}

# Live, running (not stopped, not zombie) children of $1.
running_children() {
  local pid
  for pid in $(bench_children "$1"); do
    bench_proc_stat "$pid" && [ "$proc_state" != T ] && [ "$proc_state" != t ] && echo "$pid"
  done
}

# Connections held by PID on the port (ss).
held_by() { ss -tnpH state established "( sport = :$port )" 2>/dev/null | grep -c "pid=$1," || true; }

start_multinode() {
  bench_start "$2" "$hello_bin" --port "$1" --nodes "$workers" --no-master-listen --host 127.0.0.1 \
    --heartbeat-timeout "$heartbeat_timeout"
}
start_nginx() { bench_start_nginx "$2" "$bench_work/nginx-$1" "$1" "$workers"; }

# Sets picked to a random element of the arguments (bash's RANDOM, seeded per
# server; not in a command substitution, whose subshell would draw its own numbers).
pick() {
  local items=("$@")
  picked=${items[RANDOM % ${#items[@]}]}
}

# Hung workers: when each stopped one is gone (killed by the master) and replaced
# (a new worker runs). Uses run_server's variables.
watch_stopped() {
  local now=$1 victim child
  for victim in "${stopped[@]}"; do
    if [ -z "${gone_at[$victim]:-}" ] && ! { bench_proc_stat "$victim" && [ "$proc_state" != Z ]; }; then
      gone_at[$victim]=$now
    fi
  done
  for child in $(bench_children "$master"); do
    if [[ "$known" != *" $child "* ]]; then
      known+="$child "
      # A new worker replaces the oldest hung one that is gone and not replaced yet.
      for victim in "${stopped[@]}"; do
        if [ -n "${gone_at[$victim]:-}" ] && [ -z "${replaced_at[$victim]:-}" ]; then
          replaced_at[$victim]=$now
          break
        fi
      done
    fi
  done
}

# Whether a stopped worker is still waiting to be replaced.
stopped_pending() {
  local victim
  for victim in "${stopped[@]}"; do [ -z "${replaced_at[$victim]:-}" ] && return 0; done
  return 1
}

run_server() {
  server=$1
  read -r port <<<"$(bench_py free-ports 1)"
  local log="$bench_work/$server.log" wrk_log="$bench_work/wrk-$server.log" master wrk_pid t0 next
  local events=() order=() stopped=() event victim held line i
  declare -A stop_at=() gone_at=() replaced_at=() stop_held=()
  "start_$server" "$port" "$log"
  master=$bench_last_pid
  bench_py wait-http "$port" 20 >/dev/null || bench_die "$server did not come up on port $port:
$(tail -n 20 "$log")"
  local deadline=$((SECONDS + 10))
  while [ "$(running_children "$master" | wc -l)" -lt "$workers" ]; do
    [ "$SECONDS" -lt "$deadline" ] || bench_die "$server has not started $workers workers within 10 s"
    sleep 0.05
  done
  sleep 1.2  # older than min_uptime (1 s): a killed worker is replaced at once
  RANDOM=$seed

  bench_start "$wrk_log" timeout -k 5 $((duration + 30)) wrk -t1 -c"$connections" -d"${duration}s" \
    --timeout "${wrk_timeout_s}s" -s "$bench_dir/reliability.lua" "http://127.0.0.1:$port/"
  wrk_pid=$bench_last_pid
  t0=$(now_ms)
  next=$((t0 + interval * 1000))
  i=0
  local known
  known=" $(bench_children "$master" | paste -sd' ') "
  while [ -n "$(bench_group_members "$wrk_pid")" ]; do
    local now
    now=$(now_ms)
    watch_stopped "$now"
    if [ "$now" -ge "$next" ] && [ "$now" -lt $((t0 + duration * 1000 - 500)) ]; then
      if [ "${#order[@]}" -eq 0 ]; then
        order=(kill9 stop restart)
        local a b tmp
        for a in 2 1; do
          b=$((RANDOM % (a + 1)))
          tmp=${order[a]} order[a]=${order[b]} order[b]=$tmp
        done
      fi
      event=${order[0]}
      order=("${order[@]:1}")
      local live
      read -r -a live <<<"$(running_children "$master" | paste -sd' ')"
      if [ "$event" != restart ] && [ "${#live[@]}" -eq 0 ]; then
        events+=("{\"type\":\"$event\",\"at_ms\":$((now - t0)),\"skipped\":\"no running worker\"}")
      else
        case "$event" in
          kill9)
            pick "${live[@]}"
            victim=$picked
            held=$(held_by "$victim")
            kill -KILL "$victim" 2>/dev/null || true
            events+=("{\"type\":\"kill9\",\"at_ms\":$((now - t0)),\"pid\":$victim,\"held\":$held}")
            ;;
          stop)
            pick "${live[@]}"
            victim=$picked
            held=$(held_by "$victim")
            kill -STOP "$victim" 2>/dev/null || true
            stopped+=("$victim")
            stop_at[$victim]=$now
            stop_held[$victim]=$held
            ;;
          restart)
            kill -HUP "$master"
            events+=("{\"type\":\"restart\",\"at_ms\":$((now - t0))}")
            ;;
        esac
      fi
      next=$((next + interval * 1000))
    fi
    sleep 0.05
  done
  bench_stop "$wrk_pid" || true
  # A worker stopped near the end gets its chance to be found and replaced.
  local until=$(($(now_ms) + heartbeat_timeout + 2000))
  while stopped_pending && [ "$(now_ms)" -lt "$until" ]; do
    watch_stopped "$(now_ms)"
    sleep 0.05
  done
  line=$(grep '^RELIABILITY_RESULT ' "$wrk_log") || bench_die "wrk against $server printed no result:
$(cat "$wrk_log")"
  for victim in "${stopped[@]}"; do
    local gone=null replaced=null
    [ -n "${gone_at[$victim]:-}" ] && gone=$((gone_at[$victim] - stop_at[$victim]))
    [ -n "${replaced_at[$victim]:-}" ] && replaced=$((replaced_at[$victim] - stop_at[$victim]))
    events+=("{\"type\":\"stop\",\"at_ms\":$((stop_at[$victim] - t0)),\"pid\":$victim,\"held\":${stop_held[$victim]},\"gone_ms\":$gone,\"replaced_ms\":$replaced}")
    kill -CONT "$victim" 2>/dev/null || true  # what is still stopped can stop now
  done
  local hung_lines=0
  hung_lines=$(grep -c ' is hung' "$log" 2>/dev/null || true)
  bench_stop "$master" || true
  local IFS=,
  printf '{"server":"%s","wrk":%s,"hung_log_lines":%d,"events":[%s]}\n' \
    "$server" "${line#RELIABILITY_RESULT }" "$hung_lines" "${events[*]}" >>"$results"
  bench_log "$server done"
}

for server in "${server_list[@]}"; do
  run_server "$server"
done

python3 - "$results" "$duration" "$interval" "$heartbeat_timeout" "$seed" <<'PY'
import json
import sys

path, duration, interval, heartbeat, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
runs = [json.loads(line) for line in open(path, encoding="utf-8")]
bound_ms = heartbeat + 1000
print(f"Chaos under load: wrk -t1 -c64 -d{duration}s --timeout 2s, keep-alive, 3 workers; every {interval} s "
      f"one of kill -9 / kill -STOP of a random worker / rolling restart (seed {seed});")
print(f"multinode --heartbeat-timeout {heartbeat} (a hung worker is to be gone and replaced within {bound_ms} ms)")
verdicts = []
for run in runs:
    server, wrk, events = run["server"], run["wrk"], run["events"]
    errors = wrk["errors"]
    failed = sum(errors.values())
    done = [e for e in events if "skipped" not in e]
    kills = [e for e in done if e["type"] == "kill9"]
    stops = [e for e in done if e["type"] == "stop"]
    restarts = [e for e in done if e["type"] == "restart"]
    held_kill = sum(e["held"] for e in kills)
    held_stop = sum(e["held"] for e in stops)
    print(f"\n{server}: {wrk['requests']:,} requests, {wrk['requests'] / wrk['duration_us'] * 1e6:,.0f} req/s")
    skipped = len(events) - len(done)
    print(f"  events: {len(kills)} kill -9, {len(stops)} kill -STOP, {len(restarts)} rolling restart"
          + (f", {skipped} skipped (no running worker)" if skipped else ""))
    print(f"  connections held: {held_kill} by the killed workers ({' '.join(str(e['held']) for e in kills) or '-'}), "
          f"{held_stop} by the stopped ones ({' '.join(str(e['held']) for e in stops) or '-'})")
    print(f"  failed requests: {failed} (connect {errors['connect']}, read {errors['read']}, write {errors['write']}, "
          f"timeout {errors['timeout']}, status {errors['status']})")
    for e in stops:
        gone = "never (still stopped at the end)" if e["gone_ms"] is None else f"{e['gone_ms']} ms"
        replaced = "never" if e["replaced_ms"] is None else f"{e['replaced_ms']} ms"
        print(f"  stopped pid {e['pid']} at {e['at_ms'] / 1000:.1f} s holding {e['held']}: gone after {gone}, "
              f"a new worker after {replaced}")
    if server == "nginx" and stops:
        print("  nginx has no hung-worker detection: a stopped worker is never replaced; the connections it held "
              "get no answer until it is continued (wrk counts each as a timeout at every 2 s check it is still "
              "waiting for), and new connections the kernel hashes to its reuseport socket wait there unaccepted")
    if server == "multinode":
        print(f"  'is hung' log lines: {run['hung_log_lines']}")
        ok_failed = failed <= held_kill + held_stop
        replaced = [e["replaced_ms"] for e in stops]
        ok_hung = all(r is not None and r <= bound_ms for r in replaced)
        verdicts.append(("failed <= held by killed + hung workers", f"{failed} <= {held_kill + held_stop}", ok_failed))
        verdicts.append((f"hung worker replaced within {bound_ms} ms",
                         " ".join("-" if r is None else str(r) for r in replaced) or "no stop event", ok_hung))
if verdicts:
    print("\ngoals (multinode)")
    for goal, value, ok in verdicts:
        print(f"  {goal}: {value}  {'PASS' if ok else 'FAIL'}")
PY
