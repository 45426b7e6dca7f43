#!/usr/bin/env bash
# Cross-host broadcasts through one redis-server (Debian's): multinode's bridge
# (Options::bridge; bench/bridge.cpp, 2 hosts x 2 processes) in its two placements
# (docs/bridge.md, "Where the connection lives": "process", a link to Redis in every
# process, the library as it is; "relay", one link per host in the master, which
# relays to and from its workers over the mesh) against socket.io with
# @socket.io/redis-adapter (bench/bridge_socketio.js, 4 servers, io.serverSideEmit),
# same server, same topology, alternating (docs/benchmarks.md, "Method"): each of
# --rounds rounds runs the three once in each run, and every figure is the median
# over the rounds, every ratio the median of the per-round ratios. Two runs each:
# throughput (published as fast as the
# link drains: messages/s delivered to each receiving process, the slowest one
# counts) and latency at --rate messages/s (p50/p99 of publish-to-delivery, on the
# one CLOCK_MONOTONIC of the machine). Goals (issue #11): throughput >= 10x
# socket.io's adapter; p99 <= 1 ms on loopback at 10,000 messages/s.
set -euo pipefail
bench_name=bridge.sh
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'USAGE'
usage: bench/bridge.sh [--seconds S] [--rate R] [--size B] [--from N] [--rounds K] [--no-build]

  --seconds S   how long each run publishes (default 10)
  --rate R      messages per second of the latency runs (default 10000)
  --size B      message payload bytes (default 64)
  --from N      the publishing process of host A: 0 the master (default), 1 its worker
                (in the relay a worker's message takes one more hop, through its master)
  --rounds K    rounds of the six runs (default 3)
  --no-build    use build/release as it is instead of bootstrapping and building
USAGE
}

seconds=10 rate=10000 size=64 from=0 rounds=3 build=1
bench_parse_args "--seconds=#1 --rate=#1 --size=#8 --from=#0 --rounds=#1 --no-build" "$@"
[ "$from" -le 1 ] || bench_die "--from is 0 (the master) or 1 (its worker)"
bench_require_tools node python3 redis-server timeout
bench_workdir
bench_programs bench/bridge
[ -d "$repo_root/node_modules/@socket.io/redis-adapter" ] ||
  bench_die "node_modules lacks @socket.io/redis-adapter: run scripts/bootstrap.sh bench (npm ci) first"

read -r redis_port <<<"$(bench_py free-ports 1)"
bench_start "$bench_work/redis.log" redis-server --save '' --appendonly no --port "$redis_port" --bind 127.0.0.1
for _ in $(seq 100); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.05
done
url="redis://127.0.0.1:$redis_port"

# wait_results FILE... : until each file holds a "result" line per receiving process (3 in all).
wait_results() {
  local deadline=$((SECONDS + seconds + 30))
  while [ "$(cat "$@" 2>/dev/null | grep -c '^result ')" -lt 3 ]; do
    [ "$SECONDS" -lt "$deadline" ] || bench_die "no results after $((seconds + 30)) s (logs in $bench_work)"
    sleep 0.2
  done
}

# summary NAME RUN FILE...: one JSON line of the receivers' figures (in round $round).
summary() {
  local name=$1 run=$2
  shift 2
  cat "$@" | python3 -c '
import json, sys
name, run, round_ = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [line.split() for line in sys.stdin if line.startswith("result ")]
rates = [int(r[2]) / ((int(r[4]) - int(r[3])) / 1e9) for r in rows if int(r[4]) > int(r[3])]
print(json.dumps({"peer": name, "run": run, "round": round_, "receivers": len(rows),
                  "delivered_per_process": min(int(r[2]) for r in rows),
                  "per_process_msgs_per_s": round(min(rates)) if rates else 0,
                  "p50_us": max(int(r[5]) for r in rows), "p99_us": max(int(r[6]) for r in rows)}))
' "$name" "$run" "$round"
}

# run_multinode PLACEMENT RUN RATE: host B (receiving), then host A (publishing from process --from).
run_multinode() {
  local placement=$1 run=$2 rate_arg=$3 prefix="bench$$-$1-$2-$round:" out="$bench_work/mn-$1-$2-$round" b a
  bench_start "$out-b.out" "$build_dir/bench/bridge" --bridge "$url" --prefix "$prefix" --placement "$placement"
  b=$bench_last_pid
  sleep 1
  bench_start "$out-a.out" "$build_dir/bench/bridge" --bridge "$url" --prefix "$prefix" --placement "$placement" \
    --publish --from "$from" --rate "$rate_arg" --seconds "$seconds" --size "$size"
  a=$bench_last_pid
  wait_results "$out-a.out" "$out-b.out"
  bench_stop "$a" || true
  bench_stop "$b" || true
  summary "multinode-$placement" "$run" "$out-a.out" "$out-b.out"
}

run_socketio() {
  local run=$1 rate_arg=$2 pids=() id files=()
  for id in 1 2 3; do
    bench_start "$bench_work/sio-$run-$round-$id.out" node "$bench_dir/bridge_socketio.js" --redis "$redis_port" --id "$id"
    pids+=("$bench_last_pid")
    files+=("$bench_work/sio-$run-$round-$id.out")
  done
  sleep 1
  bench_start "$bench_work/sio-$run-$round-0.out" node "$bench_dir/bridge_socketio.js" --redis "$redis_port" --id 0 \
    --publish --rate "$rate_arg" --seconds "$seconds" --size "$size"
  pids+=("$bench_last_pid")
  wait_results "${files[@]}"
  for id in "${pids[@]}"; do bench_stop "$id" || true; done
  summary socket.io "$run" "${files[@]}"
}

cd "$repo_root"  # node resolves the packages from the repository's node_modules
for round in $(seq "$rounds"); do
  run_multinode process throughput 0
  run_multinode relay throughput 0
  run_socketio throughput 0
  run_multinode process latency "$rate"
  run_multinode relay latency "$rate"
  run_socketio latency "$rate"
done | tee "$bench_work/results.jsonl"

python3 - "$bench_work/results.jsonl" "$rate" <<'PY'
import json, statistics, sys
rows = {(r["peer"], r["run"], r["round"]): r for r in map(json.loads, open(sys.argv[1]))}
rate = sys.argv[2]
rounds = sorted({r for (_, _, r) in rows})
peers = ("multinode-process", "multinode-relay", "socket.io")
def figure(peer, run, key, round_):
    return rows[(peer, run, round_)][key]
def median(peer, run, key):
    return round(statistics.median(figure(peer, run, key, r) for r in rounds))
def ratio(a, b, run, key):  # the median of the per-round ratios
    return statistics.median(max(1, figure(a, run, key, r)) / max(1, figure(b, run, key, r)) for r in rounds)
print()
print(f"medians over {len(rounds)} round(s)")
print(f"{'peer':<18} {'throughput msg/s/process':>25} {'p50 us @' + rate:>14} {'p99 us @' + rate:>14}")
for peer in peers:
    print(f"{peer:<18} {median(peer, 'throughput', 'per_process_msgs_per_s'):>25} "
          f"{median(peer, 'latency', 'p50_us'):>14} {median(peer, 'latency', 'p99_us'):>14}")
print()
for peer in peers[:2]:
    print(f"throughput ratio {peer} / socket.io: "
          f"{ratio(peer, 'socket.io', 'throughput', 'per_process_msgs_per_s'):.1f}x (goal >= 10x)")
print("where the connection lives (docs/bridge.md): relay / process: throughput "
      f"{ratio('multinode-relay', 'multinode-process', 'throughput', 'per_process_msgs_per_s'):.2f}x, "
      f"p50 {ratio('multinode-relay', 'multinode-process', 'latency', 'p50_us'):.2f}x, "
      f"p99 {ratio('multinode-relay', 'multinode-process', 'latency', 'p99_us'):.2f}x")
for peer in peers[:2]:
    print(f"{peer} p99 at {rate} msg/s: {median(peer, 'latency', 'p99_us')} us (goal <= 1000 us)")
PY
