#!/usr/bin/env bash
# Reliability under load: failed requests while wrk keeps 64 keep-alive
# connections busy and, spread over the run, either every worker is replaced by
# a rolling restart (multinode: kill -HUP of the master; nginx: kill -HUP of its
# master, what `nginx -s reload` sends) or one worker is killed with kill -9.
# multinode (examples/hello, the master only supervises) against nginx, each
# started afresh for each run, runs in alternation. Method: docs/benchmarks.md.
set -euo pipefail
bench_name=reliability.sh
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'EOF'
usage: bench/reliability.sh [--json] [--duration S] [--events N] [--rounds R]
                            [--servers LIST] [--no-build]

  --json          print the results as one JSON object instead of tables
  --duration S    seconds of each wrk run (default 10)
  --events N      events per run, spread over it: at (i - 1/2) x S/N seconds
                  for i = 1..N (default 5; 0 measures the load alone)
  --rounds R      rounds; each runs every event type against every server, the
                  servers in alternation (default 1)
  --servers LIST  comma-separated subset of multinode,nginx (default: both)
  --no-build      use build/release as it is instead of bootstrapping and building

Each run: wrk -t1 -c64 -dS --timeout 2s, keep-alive (one request in flight per
connection). The event types:
  restart  multinode: kill -HUP of the master (rolling restart of its 3 workers);
           the next one is sent only once every worker pid has changed, each
           new worker has logged "is ready" and the old ones have exited.
           nginx: kill -HUP of the master (= nginx -s reload), the next once
           both workers are new and the old ones have exited.
  kill9    kill -9 of the oldest serving worker; the next once it is replaced.

Takes about rounds x 2 x servers x (S + 5) seconds, plus the build.
EOF
}

json=0 duration=10 events=5 rounds=1 servers=multinode,nginx build=1
connections=64 wrk_timeout_s=2
multinode_workers=3 nginx_workers=2
event_timeout_s=10   # an event not complete by then is recorded as incomplete
bench_parse_args "--json --duration=#1 --events=#0 --rounds=#1 --servers= --no-build" "$@"
bench_server_list multinode nginx

tools=(python3 wrk timeout setsid awk)
bench_wants nginx && tools+=(nginx)
bench_require_tools "${tools[@]}"
# EPOCHREALTIME (bash 5) times the events.
[ -n "${EPOCHREALTIME:-}" ] || bench_die "bash 5 or newer is needed (EPOCHREALTIME)"
bench_workdir

hello_bin="$build_dir/examples/hello"
if bench_wants multinode; then
  bench_programs examples/hello
fi

results="$bench_work/results.jsonl"

# --- helpers -----------------------------------------------------------------

# starttime of PID (clock ticks since boot, field 22 of /proc/PID/stat): with the
# pid, it names one process even if the pid is reused later.
start_time() {
  local line fields
  { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
  line=${line##*) }
  read -r -a fields <<<"$line"
  echo "${fields[19]}"
}

# Remembers the pids of the space-separated list $1 as processes of the current
# run (checked to be gone at its end).
declare -A seen
remember() {
  local pid started pids
  read -r -a pids <<<"$1"
  for pid in "${pids[@]}"; do
    [ -n "${seen[$pid]:-}" ] && continue
    started=$(start_time "$pid") && seen[$pid]=$started
  done
}

workers_of() { bench_children "$1" | sort -n | paste -sd' '; }

# The oldest of the live children of $1 (earliest start time).
oldest_child() {
  local pid best="" best_start="" started
  for pid in $(bench_children "$1"); do
    started=$(start_time "$pid") || continue
    if [ -z "$best" ] || [ "$started" -lt "$best_start" ]; then
      best=$pid best_start=$started
    fi
  done
  echo "$best"
}

# Established TCP connections on local port $1 whose socket is open in each
# process PID...: the connections each holds (its fds matched with
# /proc/net/tcp by inode). Prints "PID COUNT" per PID. Two processes (find,
# awk) whatever the number of workers, so that it is quick under load.
held_connections() {
  local port_hex pid dirs=()
  port_hex=$(printf '%04X' "$1")
  shift
  for pid in "$@"; do dirs+=("/proc/$pid/fd"); done
  find "${dirs[@]}" -maxdepth 1 -lname 'socket:*' -printf '%h %l\n' 2>/dev/null |
    awk -v port=":$port_hex" -v pids="$*" '
      NR == FNR { if (FNR > 1 && $4 == "01" && substr($2, length($2) - 4) == port) established[$10] = 1; next }
      { split($1, path, "/"); inode = $2; gsub(/[^0-9]/, "", inode); if (inode in established) held[path[3]]++ }
      END { n = split(pids, list, " "); for (i = 1; i <= n; i++) print list[i], held[list[i]] + 0 }' /proc/net/tcp -
}

ready_lines() { grep -c ' is ready$' "$1" 2>/dev/null || true; }

# A JSON array from a space-separated list of numbers.
json_list() {
  local IFS=' ' items
  read -r -a items <<<"$1"
  IFS=,
  echo "[${items[*]}]"
}

# --- the servers ---------------------------------------------------------------
# start_<server> PORT LOG starts it; the master's pid is then $bench_last_pid.

start_multinode() {
  bench_start "$2" "$hello_bin" --port "$1" --nodes "$multinode_workers" --no-master-listen --host 127.0.0.1
}

start_nginx() {
  bench_start_nginx "$2" "$bench_work/nginx-$1" "$1" "$nginx_workers"
}

worker_count() {
  case "$1" in
    multinode) echo "$multinode_workers" ;;
    nginx) echo "$nginx_workers" ;;
  esac
}

# --- events --------------------------------------------------------------------
# Each sets event_json to one JSON object describing what happened (no command
# substitution: the pids it sees must reach `seen`); the run's globals (server,
# master, port, log, want) say to what.

# Waits (polling every 50 ms, at most event_timeout_s) until the master has
# $want children, none of them in OLD_PIDS, no pid of OLD_PIDS is alive any
# more, and (multinode) the log has at least READY_TARGET "is ready" lines.
# Sets now_children; returns 1 on timeout.
wait_replaced() {
  local old=$1 ready_target=$2 deadline pid ok
  deadline=$(($(bench_now_us) + event_timeout_s * 1000000))
  while :; do
    now_children=$(workers_of "$master")
    remember "$now_children"
    ok=1
    [ "$(wc -w <<<"$now_children")" -eq "$want" ] || ok=0
    for pid in $old; do
      if [[ " $now_children " == *" $pid "* ]] || { bench_proc_stat "$pid" && [ "$proc_state" != Z ] && [ "$proc_pgrp" = "$master" ]; }; then
        ok=0
      fi
    done
    if [ "$server" = multinode ] && [ "$(ready_lines "$log")" -lt "$ready_target" ]; then ok=0; fi
    [ "$ok" = 1 ] && return 0
    [ "$(bench_now_us)" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}

# Each event_<type> AT_US is called when the event is due; prepare_<type>, called
# before the wait, does what can be done ahead (the previous event is complete).

prepare_restart() {
  old_workers=$(workers_of "$master")
  ready_before=$(ready_lines "$log")
}

event_restart() {
  local at_us=$1 sent done_us complete=true
  sent=$(bench_now_us)
  kill -HUP "$master"
  wait_replaced "$old_workers" $((ready_before + want)) || complete=false
  done_us=$(bench_now_us)
  printf -v event_json '{"type":"restart","at_ms":%d,"old_pids":%s,"new_pids":%s,"complete":%s,"done_ms":%d}' \
    $(((sent - at_us) / 1000)) "$(json_list "$old_workers")" "$(json_list "$now_children")" "$complete" \
    $(((done_us - sent) / 1000))
}

prepare_kill9() {
  victim=$(oldest_child "$master")
  [ -n "$victim" ] || bench_die "$server (pid $master) has no worker to kill"
  read -r -a others <<<"$(bench_children "$master" | grep -vx "$victim" | paste -sd' ')"
}

event_kill9() {
  local at_us=$1 held="" held_all="" stopped sent done_us complete=true pid count
  stopped=$(bench_now_us)
  # What every worker holds at the kill: the victim is stopped first (SIGSTOP),
  # so that it accepts nothing between the count and the kill; what it holds
  # then is what the kill takes down.
  kill -STOP "$victim"
  while read -r pid count; do
    held_all+="${held_all:+,}\"$pid\":$count"
    [ "$pid" = "$victim" ] && held=$count
  done < <(held_connections "$port" "$victim" "${others[@]}")
  sent=$(bench_now_us)
  kill -KILL "$victim"
  wait_replaced "$victim" 0 || complete=false
  done_us=$(bench_now_us)
  printf -v event_json '{"type":"kill9","at_ms":%d,"stopped_ms":%d,"pid":%d,"held":%d,"held_by_each_worker":{%s},"new_pids":%s,"complete":%s,"done_ms":%d}' \
    $(((stopped - at_us) / 1000)) $(((sent - stopped) / 1000)) "$victim" "$held" "$held_all" \
    "$(json_list "$now_children")" "$complete" $(((done_us - sent) / 1000))
}

# --- one run -------------------------------------------------------------------

run_one() {
  local round=$1 event=$2 wrk_log wrk_pid t0 i target now line event_records="" leftover="" pid forced=false shares='{}'
  server=$3
  want=$(worker_count "$server")
  read -r port <<<"$(bench_py free-ports 1)"
  log="$bench_work/$server-$event-$round.log"
  seen=()

  "start_$server" "$port" "$log"
  master=$bench_last_pid
  remember "$master"
  bench_py wait-http "$port" 20 >/dev/null ||
    bench_die "$server did not come up on port $port; its output:
$(tail -n 20 "$log")"
  local deadline=$((SECONDS + 10))
  while [ "$(workers_of "$master" | wc -w)" -lt "$want" ] ||
    { [ "$server" = multinode ] && [ "$(ready_lines "$log")" -lt "$want" ]; }; do
    [ "$SECONDS" -lt "$deadline" ] || bench_die "$server has not started its $want workers within 10 s"
    sleep 0.05
  done
  remember "$(workers_of "$master")"
  # multinode restarts a worker that dies within min_uptime (1 s) only after a
  # back-off: let every worker be older than that before the first kill.
  sleep 1.2

  wrk_log="$bench_work/wrk-$server-$event-$round.log"
  bench_start "$wrk_log" timeout -k 5 $((duration + 30)) \
    wrk -t1 -c"$connections" -d"${duration}s" --timeout "${wrk_timeout_s}s" -s "$bench_dir/reliability.lua" \
    "http://127.0.0.1:$port/"
  wrk_pid=$bench_last_pid
  t0=$(bench_now_us)
  for i in $(seq "$events"); do
    target=$((t0 + (2 * i - 1) * duration * 1000000 / (2 * events)))
    "prepare_$event"
    now=$(bench_now_us)
    bench_sleep_us $((target - now))
    if [ "$(bench_now_us)" -ge $((t0 + duration * 1000000)) ]; then
      event_records+="${event_records:+,}{\"type\":\"$event\",\"skipped\":\"the load had ended before it was due\"}"
      continue
    fi
    # What each process holds just before the first event (ss, any server).
    [ "$i" = 1 ] && shares=$(bench_shares "$port")
    "event_$event" "$target"
    event_records+="${event_records:+,}$event_json"
  done
  # wrk ends by itself after its duration (timeout bounds it).
  while [ -n "$(bench_group_members "$wrk_pid")" ]; do sleep 0.2; done
  bench_stop "$wrk_pid" || true
  line=$(grep '^RELIABILITY_RESULT ' "$wrk_log") ||
    bench_die "wrk against $server printed no RELIABILITY_RESULT line:
$(cat "$wrk_log")"

  # Stop the server and check that every process seen during the run is gone
  # (a pid counts as the same process only with the same start time).
  remember "$(workers_of "$master")"
  bench_stop "$master" || forced=true
  for pid in "${!seen[@]}"; do
    if [ "$(start_time "$pid" 2>/dev/null)" = "${seen[$pid]}" ] && bench_proc_stat "$pid" && [ "$proc_state" != Z ]; then
      leftover+=" $pid"
    fi
  done
  [ -z "$leftover" ] || bench_die "processes of $server still running after it was stopped:$leftover"

  printf '{"kind":"run","server":"%s","event":"%s","round":%d,"port":%d,"workers":%d,"wrk":%s,"events":[%s],"shares":%s,"processes_seen":%d,"all_stopped":true,"kill_needed_to_stop":%s}\n' \
    "$server" "$event" "$round" "$port" "$want" "${line#RELIABILITY_RESULT }" "$event_records" "$shares" \
    "${#seen[@]}" "$forced" >>"$results"
  bench_log "round $round/$rounds $event $server: $(python3 -c '
import json, sys
w = json.loads(sys.argv[1])
e = w["errors"]
print("%d requests, %d failed (%s), %.0f req/s" % (w["requests"], sum(e.values()),
      " ".join("%s %d" % item for item in e.items()), w["requests"] / w["duration_us"] * 1e6))
' "${line#RELIABILITY_RESULT }"); ${#seen[@]} processes seen, all stopped"
}

quoted_servers=$(printf '"%s",' "${server_list[@]}")
bench_config_line \
  "command=$(bench_json_string "$bench_command")" \
  "servers=[${quoted_servers%,}]" \
  "rounds=$rounds" "duration_s=$duration" "events=$events" "connections=$connections" \
  "wrk_timeout_s=$wrk_timeout_s" "multinode_workers=$multinode_workers" "nginx_workers=$nginx_workers" \
  "commit=$(bench_json_string "$(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(
    [ -n "$(git -C "$repo_root" status --porcelain -- src include examples 2>/dev/null)" ] && echo ' + uncommitted changes in src/include/examples')")" \
  "versions=$(bench_json_string "$(
    bench_wants nginx && nginx -v 2>&1 | tr '\n' ' '
    wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2
  )")" >"$results"

for round in $(seq "$rounds"); do
  for event in restart kill9; do
    for server in "${server_list[@]}"; do
      run_one "$round" "$event" "$server"
    done
  done
done

# --- the report ----------------------------------------------------------------

python3 - "$results" "$json" <<'PY'
import json
import statistics
import sys

path, as_json = sys.argv[1], sys.argv[2] == "1"
config, runs = {}, []
with open(path, encoding="utf-8") as file:
    for line in file:
        record = json.loads(line)
        if record["kind"] == "config":
            config = record
        else:
            runs.append(record)

ERROR_KINDS = ("connect", "read", "write", "timeout", "status")
EVENT_TITLES = {"restart": "rolling restart", "kill9": "kill -9 of a worker"}
HOW = {
    ("restart", "multinode"): "kill -HUP master (rolling restart)",
    ("restart", "nginx"): "kill -HUP master (= nginx -s reload)",
    ("kill9", "multinode"): "kill -9 oldest worker",
    ("kill9", "nginx"): "kill -9 oldest worker",
}
PER_KILL_BOUND = config.get("connections", 64)  # no worker can hold more than wrk opens

summary = {"benchmark": "reliability", "config": config, "results": [], "goals": [], "runs": runs}
for event in ("restart", "kill9"):
    for server in config.get("servers", []):
        own = sorted((r for r in runs if r["server"] == server and r["event"] == event), key=lambda r: r["round"])
        if not own:
            continue
        errors = {k: sum(r["wrk"]["errors"][k] for r in own) for k in ERROR_KINDS}
        done = [e for r in own for e in r["events"] if "skipped" not in e]
        entry = {
            "event": event,
            "server": server,
            "workers": own[0]["workers"],
            "rounds": len(own),
            "requests": sum(r["wrk"]["requests"] for r in own),
            "failed": sum(errors.values()),
            "errors": errors,
            "failed_per_round": [sum(r["wrk"]["errors"].values()) for r in own],
            "requests_per_s_median": statistics.median(r["wrk"]["requests"] / r["wrk"]["duration_us"] * 1e6 for r in own),
            "events_planned": config.get("events", 0) * len(own),
            "events_done": len(done),
            "events_complete": sum(1 for e in done if e["complete"]),
            "event_done_ms": [e["done_ms"] for e in done],
            "event_late_ms_max": max((e["at_ms"] for e in done), default=None),
            "max_latency_us": max(r["wrk"]["max_latency_us"] for r in own),
        }
        if event == "kill9":
            entry["held_by_killed"] = [e["held"] for e in done]
            entry["held_by_killed_sum"] = sum(entry["held_by_killed"])
            entry["bound_64_per_kill"] = PER_KILL_BOUND * len(done)
        summary["results"].append(entry)


def check(entry):
    """(passed, value, target, note) of the reliability goal for one server and event."""
    complete = entry["events_complete"] == entry["events_planned"]
    missing = "" if complete else \
        f"only {entry['events_complete']} of {entry['events_planned']} events completed during the load"
    if entry["event"] == "restart":
        passed = entry["failed"] == 0 and complete
        return passed, entry["failed"], "0 failed requests", missing
    held = entry["held_by_killed_sum"]
    passed = entry["failed"] <= held and complete
    note = (f"failed {entry['failed']} vs {held} connections held by the killed workers "
            f"(per kill: {', '.join(map(str, entry['held_by_killed'])) or '-'}); "
            f"the cruder bound {PER_KILL_BOUND} x kills = {entry['bound_64_per_kill']}")
    return passed, entry["failed"], "failed <= connections the killed workers held", \
        "; ".join(x for x in (note, missing) if x)


for entry in summary["results"]:
    passed, value, target, note = check(entry)
    entry["check"] = {"target": target, "pass": passed, "note": note}
    if entry["server"] == "multinode":
        summary["goals"].append({"goal": f"{entry['event']}_failed_requests", "target": target,
                                 "value": value, "pass": passed, "note": note})

if as_json:
    print(json.dumps(summary, indent=2))
    sys.exit(0)


def table(header, rows):
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    for row in [header] + rows:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


def spread(values):
    """Every value when there are few, else median and range."""
    if not values:
        return "-"
    if len(values) <= 5:
        return " ".join(map(str, values))
    return f"median {statistics.median(values):g} ({min(values)}-{max(values)})"


verdict = {True: "PASS", False: "FAIL"}
when = (f"{config.get('events')} events per run at (i - 1/2) x {config.get('duration_s')}/{config.get('events')} s"
        if config.get("events") else "no events (the load alone)")
print(f"Reliability under load: wrk -t1 -c{config.get('connections')} -d{config.get('duration_s')}s "
      f"--timeout {config.get('wrk_timeout_s')}s, keep-alive; {when}; {config.get('rounds')} round(s), "
      f"servers in alternation ({' '.join(config.get('servers', []))}), each started afresh for each run")
print(f"  multinode: examples/hello --nodes {config.get('multinode_workers')} --no-master-listen "
      f"({config.get('multinode_workers')} workers, the master only supervises); "
      f"nginx: {config.get('nginx_workers')} workers, the master only supervises")
print(f"  {config.get('date')} on {config.get('host')}; {config.get('versions')}; build {config.get('commit')}")
print(f"  command: {config.get('command')}")
for event in ("restart", "kill9"):
    entries = [e for e in summary["results"] if e["event"] == event]
    if not entries:
        continue
    print(f"\n{EVENT_TITLES[event]}")
    rows = []
    for e in entries:
        failed = str(e["failed"])
        if e["rounds"] > 1:
            failed += f" ({' '.join(map(str, e['failed_per_round']))})"
        rows.append([e["server"], HOW[(event, e["server"])], f"{e['events_complete']}/{e['events_planned']}",
                     f"{e['requests']:,}", f"{e['requests_per_s_median']:,.0f}", failed,
                     " ".join(str(e["errors"][k]) for k in ERROR_KINDS), spread(e["event_done_ms"])]
                    + ([spread(e["held_by_killed"])] if event == "kill9" else []))
    header = ["server", "event", "done", "requests", "req/s (median)", "failed" + (" (each round)" if config.get("rounds", 1) > 1 else ""), "conn read write timeout status",
              "ms until replaced (polled)" if event == "kill9" else "ms until all replaced (polled)"]
    table(header + (["held by killed worker"] if event == "kill9" else []), rows)
print("\nconnections per worker before the first event (ss), and held by each worker at each kill -9")
rows = []
for r in sorted(runs, key=lambda r: (r["event"], r["server"], r["round"])):
    counts = sorted(r.get("shares", {}).values(), reverse=True)
    mean = sum(counts) / len(counts) if counts else 0
    worst = max((abs(c - mean) for c in counts), default=0) / mean * 100 if mean else 0
    at_kills = "; ".join(" ".join(str(n) for n in sorted(e["held_by_each_worker"].values(), reverse=True))
                         for e in r["events"] if e.get("type") == "kill9" and "held_by_each_worker" in e)
    rows.append([r["server"], r["event"], r["round"], " ".join(map(str, counts)) or "-",
                 f"{worst:.0f} %" if counts else "-", at_kills or "-"])
table(["server", "run", "round", "before the first event", "worst vs mean", "at each kill"], rows)
print("\nchecks (failed requests = wrk connect + read + write + timeout errors + non-2xx/3xx responses)")
rows = [[e["server"], EVENT_TITLES[e["event"]], e["check"]["target"], e["failed"], verdict[e["check"]["pass"]],
         e["check"]["note"]] for e in summary["results"]]
table(["server", "event", "target", "failed", "", ""], rows)
if not summary["goals"]:
    print("\ngoals: multinode was not in this run")
else:
    print("\ngoals (multinode): " + ", ".join(f"{g['goal']} {verdict[g['pass']]}" for g in summary["goals"]))
PY
