#!/usr/bin/env bash
# `multinode run` against PM2's cluster mode, in one run, with the same Node.js app
# (bench/run_hello.js) and the same number of workers: requests/s (and the app
# alone on one process, to show the supervisor adds no hop), failed requests over
# reloads under load, kill -9 of a worker until its replacement answers, and the
# supervisor's own RSS. Method: docs/benchmarks.md, "multinode run against PM2".
set -euo pipefail
bench_name=run.sh
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'EOF'
usage: bench/run.sh [--json] [--duration S] [--rounds R] [--reloads N] [--kills K]
                    [--workers W] [--ready started|notify] [--standby K] [--no-build]

  --json          print the results as one JSON object instead of tables
  --duration S    seconds of each wrk run (default 10; 2 to check that it runs)
  --rounds R      rounds of the load and of the reload runs, the servers in
                  alternation in each (default 3)
  --reloads N     reloads spread over each reload run, at (i - 1/2) x S/N s (default 5)
  --kills K       kill -9 per supervisor, alternating (default 10)
  --workers W     workers under each supervisor (default 2)
  --ready MODE    multinode's readiness: started (default: a worker is ready once
                  executed) or notify (ready at its READY=1: the app is started
                  with --notify and sends it with systemd-notify once it listens)
  --standby K     multinode's warm standbys (default 1; 0 to measure without): K more
                  processes of the app started but not serving, one of which fills
                  a killed worker's slot (bench/run_hello.js waits for SIGUSR2 as one)
  --no-build      use build/release as it is instead of bootstrapping and building

The servers, each on its own free port, all started at the beginning:
  alone      node bench/run_hello.js PORT (one process, no supervisor)
  multinode  multinode run -n W -p PORT --ready MODE --standby K -- node bench/run_hello.js [--notify]
  pm2        pm2 start bench/run_hello.js -i W -- PORT (cluster mode; PM2_HOME in
             the work directory, `pm2 kill` at the end, also on failure)
1. load: wrk -t1 -c64 -dS keep-alive against each, R rounds in alternation.
2. reloads: wrk -t1 -c64 --timeout 2s with N reloads (multinode reload;
   pm2 reload hello), at (i - 1/2) x S/N s or once the previous one is complete
   (every worker new, the old ones exited), whichever is later; wrk runs S s or
   until 1 s after the last reload; failed requests counted as
   bench/reliability.sh counts them.
3. kill -9 of the oldest serving worker (multinode's from its status: not a
   standby), then GET / on a new connection every ms until a pid that did not
   serve before answers (lib.py respawn-http), K times each; also when the
   supervisor's new child appears in /proc (its own part; 0 for a standby,
   which was there before the kill).
4. VmRSS of multinode's supervisor and of PM2's God daemon, and of their workers.
Takes about 3 x R x (S + 1) + 2 x R x (S + 3) + 2 x K x 2 seconds, plus the build.
EOF
}

json=0 duration=10 rounds=3 reloads=5 kills=10 workers=2 ready=started standby=1 build=1
connections=64 wrk_timeout_s=2
event_timeout_s=15   # a reload or a replacement not complete by then is recorded as incomplete
bench_parse_args "--json --duration=#1 --rounds=#1 --reloads=#1 --kills=#1 --workers=#1 --ready= --standby=#1 --no-build" "$@"
app_args=()
case "$ready" in
  started) ;;
  notify) app_args=(--notify) ;;
  *) bench_die "--ready wants started or notify, got '$ready'" ;;
esac
tools=(node wrk python3 timeout setsid awk)
if [ "$ready" = notify ] || [ "$standby" -gt 0 ]; then tools+=(systemd-notify); fi
bench_require_tools "${tools[@]}"
[ -n "${EPOCHREALTIME:-}" ] || bench_die "bash 5 or newer is needed (EPOCHREALTIME)"
bench_workdir

multinode_bin="$build_dir/bin/multinode"
app="$bench_dir/run_hello.js"
pm2_cli="$repo_root/node_modules/pm2/bin/pm2"
node_bin=$(command -v node)
if [ "$build" = 1 ]; then
  bench_build multinode_command # runs scripts/bootstrap.sh bench too: npm ci brings PM2
fi
[ -x "$multinode_bin" ] || bench_die "$multinode_bin is missing: build it with
  cmake --preset release && cmake --build --preset release --target multinode_command"
[ -f "$pm2_cli" ] || bench_die "PM2 is not installed in $repo_root/node_modules: run scripts/bootstrap.sh test (npm ci)"

results="$bench_work/results.jsonl"
export PM2_HOME="$bench_work/pm2"
pm2() { timeout -k 5 60 "$node_bin" "$pm2_cli" "$@"; }
pm2_daemon=""
pm2_running=0 # 1 from `pm2 start` until stop_pm2

# PM2's daemon detaches from the script (it is no process group of bench_start's):
# `pm2 kill` stops it and its workers, before lib.sh's exit handler removes the work
# directory; whatever survives that is killed by pid.
stop_pm2() {
  [ "$pm2_running" = 1 ] || return 0
  pm2_running=0
  local pid leftover=""
  [ -n "$pm2_daemon" ] || pm2_daemon=$(cat "$PM2_HOME/pm2.pid" 2>/dev/null) || true
  [ -z "$pm2_daemon" ] || leftover=$(bench_children "$pm2_daemon")
  pm2 kill >"$bench_work/pm2-kill.log" 2>&1 || bench_log "pm2 kill failed (see $bench_work/pm2-kill.log)"
  for pid in $pm2_daemon $leftover; do
    if bench_proc_stat "$pid" && [ "$proc_state" != Z ]; then
      bench_log "PM2 process $pid survived pm2 kill: killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  pm2_daemon=""
}
run_on_exit() {
  local status=$?
  set +e # (exit "$status") below must not end the handler
  stop_pm2
  (exit "$status")
  bench_on_exit
}
trap run_on_exit EXIT

# --- helpers -----------------------------------------------------------------

workers_of() { bench_children "$1" | sort -n | paste -sd' '; }

# The processes serving for $1 (a server's name): multinode's workers from its
# status (its standby is a child that does not serve yet), PM2's daemon's children.
serving_of() {
  if [ "$1" = multinode ]; then
    "$multinode_bin" status --json --control "$bench_work/multinode.sock" |
      python3 -c 'import json,sys; print(" ".join(str(w["pid"]) for w in json.load(sys.stdin)["workers"] if w["state"] == "ready"))'
  else
    workers_of "${supervisor[$1]}"
  fi
}

# The oldest of the pids $1 (the lowest start time, field 22 of /proc/PID/stat).
oldest_of() {
  local pid line fields best="" best_start=""
  for pid in $1; do
    { read -r line <"/proc/$pid/stat"; } 2>/dev/null || continue
    line=${line##*) }
    read -r -a fields <<<"$line"
    if [ -z "$best" ] || [ "${fields[19]}" -lt "$best_start" ]; then
      best=$pid best_start=${fields[19]}
    fi
  done
  echo "$best"
}

# Waits (polling every 20 ms, at most event_timeout_s) until server $1's supervisor
# has its children (its workers, and multinode's standbys), none of them in the
# list $2, and no pid of $2 is alive. Same for both supervisors: what /proc shows.
# Sets now_workers; 1 on timeout.
wait_replaced() {
  local supervisor=${supervisor[$1]} old=$2 deadline pid ok want=$workers
  [ "$1" = multinode ] && want=$((workers + standby))
  deadline=$(($(bench_now_us) + event_timeout_s * 1000000))
  while :; do
    now_workers=$(workers_of "$supervisor")
    ok=1
    [ "$(wc -w <<<"$now_workers")" -eq "$want" ] || ok=0
    for pid in $old; do
      if [[ " $now_workers " == *" $pid "* ]] || { bench_proc_stat "$pid" && [ "$proc_state" != Z ]; }; then ok=0; fi
    done
    [ "$ok" = 1 ] && return 0
    [ "$(bench_now_us)" -lt "$deadline" ] || return 1
    sleep 0.02
  done
}

# --- the servers -------------------------------------------------------------
declare -A port supervisor

read -r 'port[alone]' 'port[multinode]' 'port[pm2]' <<<"$(bench_py free-ports 3)"

bench_start "$bench_work/alone.log" "$node_bin" "$app" "${port[alone]}"
supervisor[alone]=$bench_last_pid
bench_start "$bench_work/multinode.log" "$multinode_bin" run -n "$workers" -p "${port[multinode]}" --host 127.0.0.1 \
  --ready "$ready" --standby "$standby" --control "$bench_work/multinode.sock" -- "$node_bin" "$app" "${app_args[@]}"
supervisor[multinode]=$bench_last_pid
pm2_running=1
pm2 start "$app" -i "$workers" --name hello -- "${port[pm2]}" >"$bench_work/pm2-start.log" 2>&1 ||
  bench_die "pm2 start failed: $(tail -n 20 "$bench_work/pm2-start.log")"
pm2_daemon=$(cat "$PM2_HOME/pm2.pid") || bench_die "PM2 started but wrote no $PM2_HOME/pm2.pid"
supervisor[pm2]=$pm2_daemon

for server in alone multinode pm2; do
  want=$([ "$server" = alone ] && echo 1 || echo "$workers")
  pids=$(bench_py wait-answering "${port[$server]}" "$want" 30) ||
    bench_die "$server did not answer from $want process(es) on port ${port[$server]}"
  bench_log "$server: port ${port[$server]}, supervisor pid ${supervisor[$server]}, serving pids $pids"
done

reload() {
  case "$1" in
    multinode) "$multinode_bin" reload --control "$bench_work/multinode.sock" >/dev/null ;;
    pm2) pm2 reload hello >/dev/null 2>&1 ;;
  esac
}

bench_config_line \
  "command=$(bench_json_string "$bench_command")" \
  "rounds=$rounds" "duration_s=$duration" "reloads=$reloads" "kills=$kills" "workers=$workers" \
  "ready=$(bench_json_string "$ready")" "standby=$standby" \
  "connections=$connections" "wrk_timeout_s=$wrk_timeout_s" \
  "commit=$(bench_json_string "$(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || echo unknown)")" \
  "versions=$(bench_json_string "node $(node -v), pm2 $("$node_bin" -p "require('$repo_root/node_modules/pm2/package.json').version"), $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2), $("$multinode_bin" --version)")" \
  >"$results"

# wrk_run LOG SERVER [SECONDS]: wrk against SERVER in the background for SECONDS
# (default: --duration); its pid in wrk_pid. SIGINT ends it early, with its results.
wrk_run() {
  local seconds=${3:-$duration}
  bench_start "$1" timeout -k 5 $((seconds + 30)) \
    wrk -t1 -c"$connections" -d"${seconds}s" --timeout "${wrk_timeout_s}s" -s "$bench_dir/reliability.lua" \
    "http://127.0.0.1:${port[$2]}/"
  wrk_pid=$bench_last_pid
}
# wrk_result LOG: waits for wrk to end, prints its RELIABILITY_RESULT object.
wrk_result() {
  while [ -n "$(bench_group_members "$wrk_pid")" ]; do sleep 0.1; done
  bench_stop "$wrk_pid" || true
  grep '^RELIABILITY_RESULT ' "$1" | cut -d' ' -f2- || bench_die "wrk printed no RELIABILITY_RESULT line:
$(cat "$1")"
}

# --- 1. load -----------------------------------------------------------------
for server in alone multinode pm2; do # warm-up: the JIT, the first connections
  timeout 30 wrk -t1 -c"$connections" -d1s "http://127.0.0.1:${port[$server]}/" >/dev/null
done
for round in $(seq "$rounds"); do
  for server in alone multinode pm2; do
    log="$bench_work/load-$server-$round.log"
    wrk_run "$log" "$server"
    sleep "$(awk -v d="$duration" 'BEGIN { print d / 2 }')"
    shares=$(bench_shares "${port[$server]}")
    line=$(wrk_result "$log")
    printf '{"kind":"load","server":"%s","round":%d,"supervisor_pid":%d,"shares":%s,"wrk":%s}\n' \
      "$server" "$round" "${supervisor[$server]}" "$shares" "$line" >>"$results"
    bench_log "load round $round/$rounds $server: $(python3 -c 'import json,sys; w=json.loads(sys.argv[1]); print("%.0f req/s" % (w["requests"] / w["duration_us"] * 1e6))' "$line")"
  done
done

# --- 2. reloads under load ---------------------------------------------------
# Reload i is due at (i - 1/2) x S/N s, or as soon as reload i - 1 is complete if
# that is later (a PM2 reload takes seconds): wrk runs until S s have passed and
# the last reload is complete plus 1 s, then stops on SIGINT with its results.
for round in $(seq "$rounds"); do
  for server in multinode pm2; do
    log="$bench_work/reload-$server-$round.log"
    wrk_run "$log" "$server" $((duration + reloads * event_timeout_s + 5))
    t0=$(bench_now_us)
    records=""
    for i in $(seq "$reloads"); do
      target=$((t0 + (2 * i - 1) * duration * 1000000 / (2 * reloads)))
      bench_sleep_us $((target - $(bench_now_us)))
      old=$(workers_of "${supervisor[$server]}")
      sent=$(bench_now_us)
      complete=true
      reload "$server" || complete=false
      wait_replaced "$server" "$old" || complete=false
      records+="${records:+,}{\"late_ms\":$(((sent - target) / 1000)),\"ms\":$((($(bench_now_us) - sent) / 1000)),\"complete\":$complete}"
    done
    end=$((t0 + duration * 1000000))
    last=$(($(bench_now_us) + 1000000))
    bench_sleep_us $(((end > last ? end : last) - $(bench_now_us)))
    kill -INT -- "-$wrk_pid" 2>/dev/null || true
    line=$(wrk_result "$log")
    printf '{"kind":"reload","server":"%s","round":%d,"reloads":[%s],"wrk":%s}\n' \
      "$server" "$round" "$records" "$line" >>"$results"
    bench_log "reload round $round/$rounds $server: $(python3 -c 'import json,sys; w=json.loads(sys.argv[1]); print("%d requests in %.1f s, %d failed" % (w["requests"], w["duration_us"] / 1e6, sum(w["errors"].values())))' "$line")"
  done
done

# --- 3. kill -9 until a replacement answers ----------------------------------
for round in $(seq "$kills"); do
  for server in multinode pm2; do
    # multinode replaces a worker that dies within min_uptime (1 s) only after a
    # back-off, PM2 counts it as an unstable restart: every worker is older than that.
    sleep 1.5
    sup=${supervisor[$server]}
    others=$(serving_of "$server")
    victim=$(oldest_of "$others")
    [ -n "$victim" ] || bench_die "$server (pid $sup) has no worker to kill"
    # shellcheck disable=SC2086  # the pids, one argument each
    probe=$(bench_py respawn-http "${port[$server]}" "$victim" "$event_timeout_s" "$sup" $others)
    printf '{"kind":"respawn","server":"%s","round":%d,"victim":%d,%s\n' \
      "$server" "$round" "$victim" "${probe#\{}" >>"$results"
    wait_replaced "$server" "$victim" || bench_die "$server did not replace worker $victim within $event_timeout_s s"
    bench_log "kill $round/$kills $server: $probe"
  done
done

# --- 4. RSS of the supervisors ------------------------------------------------
for server in multinode pm2; do
  sup=${supervisor[$server]}
  list=""
  for pid in $(workers_of "$sup"); do
    list+="${list:+,}{\"pid\":$pid,\"rss_kb\":$(bench_rss_kb "$pid")}"
  done
  printf '{"kind":"supervisor","server":"%s","pid":%d,"rss_kb":%d,"workers":[%s]}\n' \
    "$server" "$sup" "$(bench_rss_kb "$sup")" "$list" >>"$results"
done

# --- stop everything, check nothing is left -----------------------------------
seen_pids="${supervisor[alone]} ${supervisor[multinode]} $(workers_of "${supervisor[multinode]}") $pm2_daemon $(workers_of "$pm2_daemon")"
bench_stop "${supervisor[multinode]}" || bench_log "multinode had to be killed to stop"
bench_stop "${supervisor[alone]}" || true
stop_pm2
sleep 0.2
for pid in $seen_pids; do
  if bench_proc_stat "$pid" && [ "$proc_state" != Z ]; then
    bench_die "process $pid is still running after the servers were stopped"
  fi
done

if [ "$json" = 1 ]; then
  bench_py report-run "$results" --json
else
  bench_py report-run "$results"
fi
