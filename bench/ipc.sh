#!/usr/bin/env bash
# IPC between two processes: multinode's framed peer streams (two nodes started
# with multinode::listen), Node's cluster (process.send) and a raw socketpair,
# run in alternation (A B C A B C ...); and, for the round trip, a
# shared-memory ring as the reference for what polling could reach. Prints the
# median of each figure, the median of the per-round ratios, and the goals of
# BENCHMARKS.md.
set -euo pipefail
bench_name=ipc.sh
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'USAGE'
usage: bench/ipc.sh [--json] [--rounds N] [--quick] [--busy-poll-us U] [--no-build]

  --json            print the results as one JSON object instead of tables
  --rounds N        rounds of alternation, each runs multinode, Node cluster and raw (default 3)
  --quick           a tenth of the messages and round trips (to try the script)
  --busy-poll-us U  busy-poll window for multinode's second round-trip figure, and
                    the shared-memory ring's polling time (default 100)
  --no-build        use build/release as it is instead of bootstrapping and building

Each round sends 20M binary and 3M JSON messages through multinode, 300k
through Node, 100M 64-byte messages through the raw socketpair, and measures
20k round trips each (multinode and the ring twice: without and with polling).
USAGE
}

json=0 rounds=3 quick=0 busy_poll_us=100 build=1
bench_parse_args "--json --rounds=#1 --quick --busy-poll-us=#0 --no-build" "$@"
bench_require_tools python3 node timeout
bench_workdir

ipc_bin="$build_dir/bench/ipc"
bench_programs bench/ipc

scale=1
[ "$quick" = 1 ] && scale=10
binary=$((20000000 / scale)) json_messages=$((3000000 / scale)) round_trips=$((20000 / scale))
node_messages=$((300000 / scale)) raw_binary=$((100000000 / scale))

results="$bench_work/results.jsonl"
bench_config_line command="$(bench_json_string "$bench_command")" rounds="$rounds" \
  node="$(bench_json_string "$(node --version)")" >"$results"

# Each run prints one JSON line; the round number is added to it.
run() {
  local name=$1 round=$2 line
  shift 2
  bench_log "round $round/$rounds: $name"
  if ! line=$(timeout 600 "$@" 2>"$bench_work/$name-$round.log"); then
    tail -n 20 "$bench_work/$name-$round.log" >&2
    bench_die "$name failed in round $round (log above)"
  fi
  printf '%s\n' "${line%\}},\"round\":$round}" >>"$results"
}

for round in $(seq 1 "$rounds"); do
  run multinode "$round" "$ipc_bin" multinode --binary "$binary" --json "$json_messages" \
    --round-trips "$round_trips" --busy-round-trips "$round_trips" --busy-poll-us "$busy_poll_us"
  run node-cluster "$round" node "$bench_dir/ipc_node_cluster.js" --messages "$node_messages" \
    --round-trips "$round_trips"
  run raw "$round" "$ipc_bin" raw --binary "$raw_binary" --round-trips "$round_trips"
  run shm-ring "$round" "$ipc_bin" shm-ring --round-trips "$round_trips" --spin-us 0
  run shm-ring-polling "$round" "$ipc_bin" shm-ring --round-trips "$round_trips" --spin-us "$busy_poll_us"
done

python3 - "$results" "$json" <<'PY'
import json, statistics, sys

BINARY_GOAL = 10e6    # 64-byte binary frames one way, msg/s
JSON_GOAL = 1e6       # small JSON objects one way, msg/s
RTT_GOAL_US = 20.0    # round trip

lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for l in lines:  # the ring's two runs are two implementations in the tables
    if l.get("impl") == "shm-ring" and l.get("spin_us", 0) > 0:
        l["impl"] = "shm-ring-polling"
config = next(l for l in lines if l["kind"] == "config")
runs = [l for l in lines if l["kind"] == "ipc"]
rounds = sorted({r["round"] for r in runs})

def figure(impl, key):
    values = [r[key] for r in runs if r["impl"] == impl and key in r]
    return statistics.median(values) if values else None

def ratio(numerator, denominator):
    """Median over rounds of numerator/denominator, each (impl, key) measured in the same round."""
    values = []
    for n in rounds:
        a = next((r[numerator[1]] for r in runs if r["impl"] == numerator[0] and r["round"] == n), None)
        b = next((r[denominator[1]] for r in runs if r["impl"] == denominator[0] and r["round"] == n), None)
        if a and b:
            values.append(a / b)
    return statistics.median(values) if values else None

mn = "multinode"
medians = {
    "multinode": {k: figure(mn, k) for k in ("binary_64_msgs_per_s", "json_msgs_per_s", "rtt_us_median", "busy_rtt_us_median",
                                              "binary_receiver_cpu_ns_per_msg", "binary_sender_cpu_ns_per_msg",
                                              "json_receiver_cpu_ns_per_msg", "json_sender_cpu_ns_per_msg")},
    "node_cluster": {k: figure("node-cluster", k) for k in ("json_msgs_per_s", "rtt_us_median")},
    "raw_socketpair": {k: figure("raw", k) for k in ("binary_64_msgs_per_s", "rtt_us_median")},
    "shm_ring": {"rtt_us_median": figure("shm-ring", "rtt_us_median"),
                 "polling_rtt_us_median": figure("shm-ring-polling", "rtt_us_median")},
}
busy_poll_us = next((r["busy_poll_us"] for r in runs if r["impl"] == mn), None)
ratios = {
    "multinode_binary_over_raw_binary": ratio((mn, "binary_64_msgs_per_s"), ("raw", "binary_64_msgs_per_s")),
    "multinode_binary_over_node_json": ratio((mn, "binary_64_msgs_per_s"), ("node-cluster", "json_msgs_per_s")),
    "multinode_json_over_node_json": ratio((mn, "json_msgs_per_s"), ("node-cluster", "json_msgs_per_s")),
    "node_rtt_over_multinode_rtt": ratio(("node-cluster", "rtt_us_median"), (mn, "rtt_us_median")),
    "node_rtt_over_multinode_busy_rtt": ratio(("node-cluster", "rtt_us_median"), (mn, "busy_rtt_us_median")),
    "raw_rtt_over_multinode_rtt": ratio(("raw", "rtt_us_median"), (mn, "rtt_us_median")),
    "shm_ring_polling_rtt_over_multinode_busy_rtt": ratio(("shm-ring-polling", "rtt_us_median"),
                                                          (mn, "busy_rtt_us_median")),
}
m = medians["multinode"]
goals = {
    "binary_64_at_least_10M_per_s": m["binary_64_msgs_per_s"] is not None and m["binary_64_msgs_per_s"] >= BINARY_GOAL,
    "json_at_least_1M_per_s": m["json_msgs_per_s"] is not None and m["json_msgs_per_s"] >= JSON_GOAL,
    "rtt_at_most_20us": m["rtt_us_median"] is not None and m["rtt_us_median"] <= RTT_GOAL_US,
    "rtt_busy_poll_at_most_20us": m["busy_rtt_us_median"] is not None and m["busy_rtt_us_median"] <= RTT_GOAL_US,
}

if sys.argv[2] == "1":
    print(json.dumps({"config": config, "rounds": len(rounds), "busy_poll_us": busy_poll_us, "medians": medians,
                      "ratios": ratios, "goals": goals, "runs": runs}))
    sys.exit(0)

def rate(v):
    if v is None: return "-"
    return f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.0f}k"
def us(v): return "-" if v is None else f"{v:.1f}"
def times(v): return "-" if v is None else f"{v:.2f}x"

print(f"IPC between two processes: {config['host']}; {len(rounds)} round(s), median of rounds")
print(f"{'':34}{'multinode':>12}{'Node cluster':>14}{'raw socketpair':>16}{'shm ring':>10}")
n, r, q = medians["node_cluster"], medians["raw_socketpair"], medians["shm_ring"]
print(f"{'64-byte binary one way, msg/s':34}{rate(m['binary_64_msgs_per_s']):>12}{'-':>14}{rate(r['binary_64_msgs_per_s']):>16}{'-':>10}")
print(f"{'small JSON one way, msg/s':34}{rate(m['json_msgs_per_s']):>12}{rate(n['json_msgs_per_s']):>14}{'-':>16}{'-':>10}")
print(f"{'round trip, us (median)':34}{us(m['rtt_us_median']):>12}{us(n['rtt_us_median']):>14}{us(r['rtt_us_median']):>16}{us(q['rtt_us_median']):>10}")
print(f"{f'round trip, polling {busy_poll_us} us':34}{us(m['busy_rtt_us_median']):>12}{'-':>14}{'-':>16}{us(q['polling_rtt_us_median']):>10}")
print("(raw: 1024 messages per write, blocking read/write round trips; Node: process.send of the same JSON")
print(" object; shm ring: 64-byte slots, futex wake-up only when the reader sleeps; multinode polling is")
print(" Stream::set_busy_poll, the ring's is a spin before the futex wait)")
def ns(v): return "-" if v is None else f"{v:.0f} ns"
print(f"multinode CPU per message (user + system, system calls included): 64-byte binary "
      f"{ns(m['binary_sender_cpu_ns_per_msg'])} sending, {ns(m['binary_receiver_cpu_ns_per_msg'])} receiving; "
      f"JSON {ns(m['json_sender_cpu_ns_per_msg'])} sending, {ns(m['json_receiver_cpu_ns_per_msg'])} receiving")
print()
print("ratios (median of per-round ratios):")
for key, value in ratios.items():
    print(f"  {key.replace('_', ' '):48} {times(value)}")
print()
print("goals (BENCHMARKS.md):")
for key, ok in goals.items():
    print(f"  {key.replace('_', ' '):48} {'PASS' if ok else 'FAIL'}")
PY
