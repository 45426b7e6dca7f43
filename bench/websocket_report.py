#!/usr/bin/env python3
"""The report of bench/websocket.sh from its results file: medians over the
rounds, the median of the per-round ratios multinode/Node, and the goals of
issue #9. Standard library only; shares lib.py's helpers.

    websocket_report.py FILE [--json]

A results file has one JSON object per line, each with a "kind":
  config  how the run was made (command, date, parameters, versions)
  idle    one idle measure: server, round, connections, before/after (every process
          of the server: pid, rss_kb, sockets), load (websocket_load's result)
  echo    one echo run: server, round, load
  fanout  one fan-out run: server, round, clients, before/during (as idle), load
A record of these kinds with "failed" (why) is a round that failed for that
server (e.g. its load could not open every connection): it is left out of the
medians and ratios, and listed. Nothing is printed that was not measured in that file.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import fail, goal, median, ms, print_table, read_records, verdict  # noqa: E402

ECHO_RATIO_GOAL = 3.0            # multinode messages/s over Node's, at least
FANOUT_P99_RATIO_GOAL = 0.2      # multinode p99 over Node's, at most, at FANOUT_GOAL_CLIENTS
FANOUT_GOAL_CLIENTS = 10000
IDLE_RATIO_GOAL = 0.2            # multinode bytes per idle connection over Node's, at most
IDLE_BYTES_GOAL = 2048           # and at most 2 KB


def read_results(path):
    records = {"config": {}, "idle": [], "echo": [], "fanout": [], "failed": []}
    for number, record in read_records(path):
        kind = record.get("kind")
        if kind == "config":
            records["config"] = record
        elif kind in ("idle", "echo", "fanout") and "failed" in record:
            records["failed"].append(record)
        elif kind in records and kind != "failed":
            records[kind].append(record)
        else:
            fail(f"{path}:{number}: unknown kind {kind!r}")
    return records


def rss_sum(processes):
    return sum(p["rss_kb"] for p in processes)


def spread(before, during):
    """Connections each process of the server held: its sockets during the run
    minus before (the listening socket, the mesh and the control channel)."""
    base = {p["pid"]: p["sockets"] for p in before}
    return [max(p["sockets"] - base.get(p["pid"], 0), 0) for p in during]


def server_cpu_us(run, work):
    """CPU time (user + system) of every server process from before to after the
    load, in microseconds per unit of work (echoed message, delivery); None for
    records without it. Includes the connections' handshakes and closes."""
    before = {p["pid"]: p for p in run.get("before", []) if "cpu_ticks" in p}
    after = [p for p in run.get("after", []) if "cpu_ticks" in p and p["pid"] in before]
    if not after or not work:
        return None
    ticks = sum(p["cpu_ticks"] - before[p["pid"]]["cpu_ticks"] for p in after)
    return ticks / run.get("clock_ticks", 100) * 1e6 / work


def server_wait_ms(run):
    """Time the server processes spent runnable but waiting for a CPU during the
    load (sum over the processes), or None."""
    before = {p["pid"]: p for p in run.get("before", []) if "wait_ms" in p}
    after = [p for p in run.get("after", []) if "wait_ms" in p and p["pid"] in before]
    if not after:
        return None
    return sum(p["wait_ms"] - before[p["pid"]]["wait_ms"] for p in after)


def median_of(values):
    values = [v for v in values if v is not None]
    return median(values) if values else None


def ratios(runs, value, server="multinode", reference="node"):
    """value(run) of each of server's runs over the same round's Node run."""
    by_round = {r["round"]: r for r in runs if r["server"] == reference}
    out = []
    for run in runs:
        if run["server"] != server or run["round"] not in by_round:
            continue
        theirs = value(by_round[run["round"]])
        if theirs:
            out.append(value(run) / theirs)
    return out


def errors_of(run):
    load = run["load"]
    return load.get("errors", 0) + load.get("mismatched", 0) + load.get("unexpected", 0)


def summarize(records):
    config = records["config"]
    servers = config.get("servers") or sorted({r["server"] for k in ("idle", "echo", "fanout") for r in records[k]})
    summary = {"benchmark": "websocket", "config": config, "idle": {}, "echo": {}, "fanout": {}, "goals": [],
               "failed_rounds": [{key: r[key] for key in ("kind", "server", "round", "clients", "failed") if key in r}
                                 for r in records["failed"]]}

    def node_failed(kind, clients=None):
        return any(r["server"] == "node" and r["kind"] == kind and (clients is None or r.get("clients") == clients)
                   for r in records["failed"])

    def per_connection(run):
        return (rss_sum(run["after"]) - rss_sum(run["before"])) * 1024 / run["connections"]

    for server in servers:
        own = sorted((r for r in records["idle"] if r["server"] == server), key=lambda r: r["round"])
        if own:
            summary["idle"][server] = {
                "connections": own[0]["connections"],
                "bytes_per_connection_median": median([per_connection(r) for r in own]),
                "bytes_per_connection_rounds": [round(per_connection(r)) for r in own],
                "rss_before_kb_rounds": [rss_sum(r["before"]) for r in own],
                "rss_after_kb_rounds": [rss_sum(r["after"]) for r in own],
                "spread_rounds": [spread(r["before"], r["after"]) for r in own],
                "still_open_rounds": [r["load"].get("still_open") for r in own],
                "error_count": sum(errors_of(r) for r in own),
                "first_errors": [r["load"]["first_error"] for r in own if r["load"].get("first_error")],
            }
    for server, entry in summary["idle"].items():
        if server != "node":
            own_ratios = ratios(records["idle"], per_connection, server)
            entry["ratio_to_node_median"] = median(own_ratios)
            entry["ratio_to_node_rounds"] = [round(x, 3) for x in own_ratios]

    def echo_rate(run):
        return run["load"]["messages_per_s"]

    for server in servers:
        own = sorted((r for r in records["echo"] if r["server"] == server), key=lambda r: r["round"])
        if own:
            summary["echo"][server] = {
                "messages_per_s_median": median([echo_rate(r) for r in own]),
                "messages_per_s_rounds": [round(echo_rate(r)) for r in own],
                "rtt_p50_us_median": median([r["load"]["rtt"]["p50_us"] for r in own]),
                "rtt_p99_us_median": median([r["load"]["rtt"]["p99_us"] for r in own]),
                "load_cpu_share_median": median([r["load"]["load_cpu_s"] / r["load"]["duration_s"] for r in own]),
                "server_cpu_us_per_message_median": median_of(
                    [server_cpu_us(r, r["load"].get("messages_total")) for r in own]),
                "server_wait_ms_median": median_of([server_wait_ms(r) for r in own]),
                "load_wait_s_median": median_of([r["load"].get("load_wait_s") for r in own]),
                "error_count": sum(errors_of(r) for r in own),
                "first_errors": [r["load"]["first_error"] for r in own if r["load"].get("first_error")],
            }
    for server, entry in summary["echo"].items():
        if server != "node":
            own_ratios = ratios(records["echo"], echo_rate, server)
            entry["ratio_to_node_median"] = median(own_ratios)
            entry["ratio_to_node_rounds"] = [round(x, 3) for x in own_ratios]

    def p99(run):
        return run["load"]["latency"]["p99_us"]

    for clients in sorted({r["clients"] for r in records["fanout"]}):
        runs = [r for r in records["fanout"] if r["clients"] == clients]
        entry = {}
        for server in servers:
            own = sorted((r for r in runs if r["server"] == server), key=lambda r: r["round"])
            if not own:
                continue
            entry[server] = {
                "p50_us_median": median([r["load"]["latency"]["p50_us"] for r in own]),
                "p99_us_median": median([p99(r) for r in own]),
                "p99_us_rounds": [p99(r) for r in own],
                "delivered_per_s_median": median([r["load"]["delivered_per_s"] for r in own]),
                "delivered_per_s_rounds": [round(r["load"]["delivered_per_s"]) for r in own],
                "expected": sum(r["load"]["expected"] for r in own),
                "delivered": sum(r["load"]["delivered"] for r in own),
                "lost": sum(r["load"]["lost"] for r in own),
                "missed_ticks": sum(r["load"]["missed_ticks"] for r in own),
                "load_cpu_share_median": median([r["load"]["load_cpu_s"] / r["load"]["run_s"] for r in own]),
                "server_cpu_us_per_delivery_median": median_of(
                    [server_cpu_us(r, r["load"].get("delivered_total")) for r in own]),
                "server_wait_ms_median": median_of([server_wait_ms(r) for r in own]),
                "load_wait_s_median": median_of([r["load"].get("load_wait_s") for r in own]),
                "spread_rounds": [spread(r["before"], r["during"]) for r in own],
                "error_count": sum(errors_of(r) for r in own),
                "first_errors": [r["load"]["first_error"] for r in own if r["load"].get("first_error")],
            }
        for server, figures in entry.items():
            if server != "node":
                own_ratios = ratios(runs, p99, server)
                figures["p99_ratio_to_node_median"] = median(own_ratios)
                figures["p99_ratio_to_node_rounds"] = [round(x, 3) for x in own_ratios]
        summary["fanout"][str(clients)] = entry

    if "multinode" not in servers:
        return summary
    goals = summary["goals"]
    echo = summary["echo"].get("multinode")
    if echo is None:
        goals.append(goal("echo_vs_node", f">= {ECHO_RATIO_GOAL:g}x Node", None, None, "echo was not run"))
    elif echo.get("ratio_to_node_median") is None:
        goals.append(goal("echo_vs_node", f">= {ECHO_RATIO_GOAL:g}x Node", None, None,
                          "Node failed every round" if node_failed("echo") else "Node was not in this run"))
    else:
        ratio = echo["ratio_to_node_median"]
        note = f"multinode had {echo['error_count']} errors" if echo["error_count"] else ""
        goals.append(goal("echo_vs_node", f">= {ECHO_RATIO_GOAL:g}x Node", ratio,
                          ratio >= ECHO_RATIO_GOAL and not echo["error_count"], note))

    fanout = summary["fanout"].get(str(FANOUT_GOAL_CLIENTS), {}).get("multinode")
    target = f"<= {FANOUT_P99_RATIO_GOAL:g}x Node's p99 at {FANOUT_GOAL_CLIENTS} clients"
    if fanout is None:
        goals.append(goal("fanout_p99_vs_node", target, None, None, f"fan-out at {FANOUT_GOAL_CLIENTS} was not run"))
    elif fanout.get("p99_ratio_to_node_median") is None:
        goals.append(goal("fanout_p99_vs_node", target, None, None,
                          "Node failed every round" if node_failed("fanout", FANOUT_GOAL_CLIENTS)
                          else "Node was not in this run"))
    else:
        ratio = fanout["p99_ratio_to_node_median"]
        problems = []
        if fanout["error_count"]:
            problems.append(f"{fanout['error_count']} errors")
        if fanout["lost"]:
            problems.append(f"{fanout['lost']} deliveries missing at the end of the drain")
        goals.append(goal("fanout_p99_vs_node", target, ratio,
                          ratio <= FANOUT_P99_RATIO_GOAL and not problems, "multinode had " + ", ".join(problems)
                          if problems else ""))

    idle = summary["idle"].get("multinode")
    if idle is None:
        goals.append(goal("idle_bytes", f"<= {IDLE_BYTES_GOAL} bytes", None, None, "idle was not run"))
    else:
        value = idle["bytes_per_connection_median"]
        note = f"multinode had {idle['error_count']} errors" if idle["error_count"] else ""
        ratio = idle.get("ratio_to_node_median")
        goals.append(goal("idle_vs_node", f"<= {IDLE_RATIO_GOAL:g}x Node's", ratio,
                          None if ratio is None else ratio <= IDLE_RATIO_GOAL and not idle["error_count"],
                          note if ratio is not None else
                          "Node failed every round" if node_failed("idle") else "Node was not in this run"))
        goals.append(goal("idle_bytes", f"<= {IDLE_BYTES_GOAL} bytes", value,
                          value <= IDLE_BYTES_GOAL and not idle["error_count"], note))
    return summary


def us_text(value):
    return "-" if value is None else f"{value:.1f} us"


def wait_text(server_ms, load_s):
    server = "-" if server_ms is None else f"{server_ms / 1000:.2f}"
    load = "-" if load_s is None else f"{load_s:.2f}"
    return f"{server} / {load} s"


def percent(share):
    """The load generator's CPU time over the run's time: near 100 % it, not the server, set the pace."""
    return f"{share * 100:.0f}%" if share is not None else "-"


def ratio_text(value):
    return f"{value:.2f}x" if value is not None else "-"


def print_report(summary):
    config = summary["config"]
    print(f"WebSocket: {config.get('processes')} processes per server, {config.get('rounds')} rounds in alternation "
          f"({' '.join(config.get('servers', []))}); {config.get('versions', '')}")
    print(f"  {config.get('date')} on {config.get('host')}; command: {config.get('command')}")
    if config.get("deflate"):
        print("  permessage-deflate on both sides for idle and echo (--deflate)")

    if summary["idle"]:
        print(f"\nidle connections: RSS of every process of a fresh server, before and with "
              f"{config.get('idle')} connections open")
        rows = []
        for server, entry in summary["idle"].items():
            rows.append([server, f"{entry['bytes_per_connection_median']:,.0f}",
                         ratio_text(entry.get("ratio_to_node_median")),
                         f"{entry['rss_before_kb_rounds'][0] / 1024:.1f} -> {entry['rss_after_kb_rounds'][0] / 1024:.1f} MB",
                         "/".join(str(x) for x in entry["spread_rounds"][0]), entry["error_count"],
                         " ".join(str(x) for x in entry["bytes_per_connection_rounds"])])
        print_table(["server", "bytes/conn (median)", "vs Node", "RSS (round 1)", "conns per process",
                     "errors", "each round"], rows)

    if summary["echo"]:
        print(f"\necho: {config.get('connections')} connections, {config.get('size')}-byte text messages, "
              f"{config.get('pipeline', 1)} in flight each, {config.get('duration_s')} s per run")
        rows = []
        for server, entry in summary["echo"].items():
            rows.append([server, f"{entry['messages_per_s_median']:,.0f}", ratio_text(entry.get("ratio_to_node_median")),
                         ms(entry["rtt_p50_us_median"]), ms(entry["rtt_p99_us_median"]),
                         percent(entry["load_cpu_share_median"]),
                         us_text(entry.get("server_cpu_us_per_message_median")),
                         wait_text(entry.get("server_wait_ms_median"), entry.get("load_wait_s_median")),
                         entry["error_count"],
                         " ".join(f"{x / 1000:.0f}k" for x in entry["messages_per_s_rounds"])])
        print_table(["server", "msg/s (median)", "vs Node", "rtt p50", "rtt p99", "load CPU", "server CPU/msg",
                     "run-queue wait server/load", "errors", "each round"], rows)

    for clients, entry in summary["fanout"].items():
        print(f"\nfan-out: {clients} clients, one sends {config.get('size')} bytes every {config.get('interval_ms')} ms "
              f"for {config.get('duration_s')} s, to every other client (latency of undelivered messages counted "
              f"until the end of the {config.get('drain_s')} s drain)")
        rows = []
        for server, figures in entry.items():
            rows.append([server, ms(figures["p50_us_median"]), ms(figures["p99_us_median"]),
                         ratio_text(figures.get("p99_ratio_to_node_median")),
                         f"{figures['delivered_per_s_median']:,.0f}", f"{figures['delivered']:,}/{figures['expected']:,}",
                         "/".join(str(x) for x in figures["spread_rounds"][0]),
                         percent(figures["load_cpu_share_median"]),
                         us_text(figures.get("server_cpu_us_per_delivery_median")),
                         wait_text(figures.get("server_wait_ms_median"), figures.get("load_wait_s_median")),
                         figures["missed_ticks"], figures["error_count"]])
        print_table(["server", "p50", "p99", "p99 vs Node", "delivered/s", "delivered/expected",
                     "conns per process", "load CPU", "server CPU/delivery", "run-queue wait server/load",
                     "missed ticks", "errors"], rows)

    errors = [(kind, server, e) for kind in ("idle", "echo") for server, entry in summary[kind].items()
              for e in entry["first_errors"]]
    errors += [(f"fan-out {clients}", server, e) for clients, entry in summary["fanout"].items()
               for server, figures in entry.items() for e in figures["first_errors"]]
    if errors:
        print("\nfirst error of each run that had one")
        for kind, server, error in errors:
            print(f"  {kind} {server}: {error}")

    if summary["failed_rounds"]:
        print("\nfailed rounds (left out of the medians and ratios)")
        for r in summary["failed_rounds"]:
            what = f"{r['kind']} {r['clients']}" if "clients" in r else r["kind"]
            print(f"  {what} round {r['round']} {r['server']}: {r['failed']}")

    if not summary["goals"]:
        print("\ngoals: multinode was not in this run")
        return
    print("\ngoals (multinode)")
    rows = []
    for g in summary["goals"]:
        value = g["value"]
        shown = "-" if value is None else (f"{value:,.0f} bytes" if g["goal"] == "idle_bytes" else f"{value:.3f}x")
        rows.append([g["goal"], g["target"], shown, verdict(g["pass"]), g["note"]])
    print_table(["goal", "target", "measured", "", ""], rows)


def main(argv):
    if len(argv) not in (2, 3) or (len(argv) == 3 and argv[2] != "--json"):
        fail(__doc__)
    summary = summarize(read_results(argv[1]))
    if len(argv) == 3:
        print(json.dumps(summary, indent=2))
    else:
        print_report(summary)


if __name__ == "__main__":
    main(sys.argv)
