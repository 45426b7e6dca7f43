#!/usr/bin/env bash
# Recycling under load: failed requests while wrk keeps 64 keep-alive connections
# busy and the workers of examples/hello (3, the master only supervises) are
# recycled every few thousand requests (--max-requests). Each recycle goes through
# the rolling path: a replacement is ready before the old worker stops. Prints the
# requests, the failed ones by kind, and how many recycles happened during the run.
# Method: docs/benchmarks.md, "bench/recycle.sh".
set -euo pipefail
bench_name=recycle.sh
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'EOF_USAGE'
usage: bench/recycle.sh [--json] [--duration S] [--max-requests N] [--jitter N]
                        [--rounds R] [--no-build]

  --json            print the results as one JSON object instead of a table
  --duration S      seconds of each wrk run (default 10)
  --max-requests N  hello --max-requests: a worker is recycled after N requests
                    (default 5000)
  --jitter N        hello --max-requests-jitter (default: a tenth of N)
  --rounds R        runs, each against a freshly started hello (default 1)
  --no-build        use build/release as it is instead of bootstrapping and building

Each run: examples/hello --nodes 3 --no-master-listen --max-requests N
--max-requests-jitter J, then wrk -t1 -c64 -dS --timeout 2s -s bench/reliability.lua
(keep-alive, one request in flight per connection). A recycle is counted for each
"recycled:" line of the master's log during the load (the old worker was replaced
by a ready one). Goal: 0 failed requests, and at least one recycle per run.
EOF_USAGE
}

json=0 duration=10 max_requests=5000 jitter="" rounds=1 build=1
connections=64 wrk_timeout_s=2 workers=3
bench_parse_args "--json --duration=#1 --max-requests=#1 --jitter=#0 --rounds=#1 --no-build" "$@"
[ -n "$jitter" ] || jitter=$((max_requests / 10))

bench_require_tools python3 wrk timeout setsid
bench_workdir
bench_programs examples/hello
hello_bin="$build_dir/examples/hello"
results="$bench_work/results.jsonl"

recycled_lines() { grep -c ' recycled: ' "$1" 2>/dev/null || true; }

run_one() {
  local round=$1 port log wrk_log master line before after forced=false deadline
  read -r port <<<"$(bench_py free-ports 1)"
  log="$bench_work/hello-$round.log"
  wrk_log="$bench_work/wrk-$round.log"
  bench_start "$log" "$hello_bin" --port "$port" --host 127.0.0.1 --nodes "$workers" --no-master-listen \
    --max-requests "$max_requests" --max-requests-jitter "$jitter"
  master=$bench_last_pid
  bench_py wait-http "$port" 20 >/dev/null ||
    bench_die "hello did not come up on port $port; its output:
$(tail -n 20 "$log")"
  deadline=$((SECONDS + 10))
  while [ "$(grep -c ' is ready$' "$log" || true)" -lt "$workers" ]; do
    [ "$SECONDS" -lt "$deadline" ] || bench_die "hello has not started its $workers workers within 10 s"
    sleep 0.05
  done
  before=$(recycled_lines "$log")  # wait-http's own requests may count towards a first recycle

  bench_start "$wrk_log" timeout -k 5 $((duration + 30)) \
    wrk -t1 -c"$connections" -d"${duration}s" --timeout "${wrk_timeout_s}s" -s "$bench_dir/reliability.lua" \
    "http://127.0.0.1:$port/"
  local wrk_pid=$bench_last_pid
  while [ -n "$(bench_group_members "$wrk_pid")" ]; do sleep 0.2; done
  bench_stop "$wrk_pid" || true
  after=$(recycled_lines "$log")
  line=$(grep '^RELIABILITY_RESULT ' "$wrk_log") ||
    bench_die "wrk printed no RELIABILITY_RESULT line:
$(cat "$wrk_log")"
  bench_stop "$master" || forced=true
  printf '{"kind":"run","round":%d,"port":%d,"workers":%d,"wrk":%s,"recycles":%d,"kill_needed_to_stop":%s}\n' \
    "$round" "$port" "$workers" "${line#RELIABILITY_RESULT }" $((after - before)) "$forced" >>"$results"
  bench_log "round $round/$rounds: $((after - before)) recycles during the load"
}

bench_config_line \
  "command=$(bench_json_string "$bench_command")" \
  "rounds=$rounds" "duration_s=$duration" "connections=$connections" "wrk_timeout_s=$wrk_timeout_s" \
  "workers=$workers" "max_requests=$max_requests" "max_requests_jitter=$jitter" \
  "commit=$(bench_json_string "$(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(
    [ -n "$(git -C "$repo_root" status --porcelain -- src include examples 2>/dev/null)" ] && echo ' + uncommitted changes in src/include/examples')")" \
  "versions=$(bench_json_string "$(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)")" >"$results"

for round in $(seq "$rounds"); do run_one "$round"; done

python3 - "$results" "$json" <<'PY'
import json
import sys

path, as_json = sys.argv[1], sys.argv[2] == "1"
config, runs = {}, []
with open(path, encoding="utf-8") as file:
    for line in file:
        record = json.loads(line)
        (runs.append(record) if record["kind"] == "run" else config.update(record))

KINDS = ("connect", "read", "write", "timeout", "status")
errors = {k: sum(r["wrk"]["errors"][k] for r in runs) for k in KINDS}
failed = sum(errors.values())
requests = sum(r["wrk"]["requests"] for r in runs)
recycles = sum(r["recycles"] for r in runs)
passed = failed == 0 and all(r["recycles"] > 0 for r in runs)
summary = {
    "benchmark": "recycle", "config": config, "runs": runs,
    "requests": requests, "failed": failed, "errors": errors, "recycles": recycles,
    "requests_per_recycle": requests / recycles if recycles else None,
    "goals": [{"goal": "recycle_failed_requests", "target": "0 failed requests, at least one recycle per run",
               "value": failed, "pass": passed}],
}
if as_json:
    print(json.dumps(summary, indent=2))
    sys.exit(0)
print(f"Recycling under load: wrk -t1 -c{config['connections']} -d{config['duration_s']}s "
      f"--timeout {config['wrk_timeout_s']}s, keep-alive; examples/hello --nodes {config['workers']} "
      f"--no-master-listen --max-requests {config['max_requests']} --max-requests-jitter "
      f"{config['max_requests_jitter']}; {config['rounds']} round(s)")
print(f"  {config.get('date')} on {config.get('host')}; {config.get('versions')}; build {config.get('commit')}")
print(f"  command: {config.get('command')}")
rows = [["round", "requests", "req/s", "recycles", "failed", "conn read write timeout status"]]
for r in runs:
    e = r["wrk"]["errors"]
    rows.append([r["round"], f"{r['wrk']['requests']:,}", f"{r['wrk']['requests'] / r['wrk']['duration_us'] * 1e6:,.0f}",
                 r["recycles"], sum(e.values()), " ".join(str(e[k]) for k in KINDS)])
widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
for row in rows:
    print("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
print(f"\ntotal: {requests:,} requests, {recycles} recycles, {failed} failed "
      f"(wrk connect + read + write + timeout errors + non-2xx/3xx responses)")
print(f"goal (0 failed, at least one recycle per run): {'PASS' if passed else 'FAIL'}")
PY
