#!/usr/bin/env python3
"""The parts of bench/http.sh and bench/respawn.sh that are easier in Python
than in bash: picking ports, waiting for a server, and turning the measurements
of one run into medians, ratios and pass/fail. Standard library only.

    lib.py free-ports N                  N distinct free loopback TCP ports
    lib.py wait-http PORT TIMEOUT_S      until GET / answers 200; prints the body's first line
    lib.py wait-greeting PORT TIMEOUT_S  until a connection is greeted with "... pid N"; prints N
    lib.py report-http FILE [--json]     the HTTP report from a results file
    lib.py report-respawn FILE [--json]  the respawn report from a results file

A results file has one JSON object per line, each with a "kind":
  config   how the run was made (command, date, parameters, versions)
  run      one wrk run: server, mode (keepalive | pipelined), round, wrk (pipeline.lua's done() line)
  process  one process after the load: server, role, serves (bool), pid, rss_kb
  kill     one kill -9 measured by respawn_probe: server, round, old_pid, new_pid, us | error
  event    something that happened to a server during the run and must be shown: server, event
Nothing is printed that was not measured in that file.
"""

import http.client
import json
import re
import socket
import statistics
import sys
import time

# The goals of /work/shared/BENCHMARKS.md that these benches check.
KEEPALIVE_RATIO_GOAL = 1.0   # multinode req/s / nginx req/s, keep-alive
PIPELINED_RATIO_GOAL = 3.0   # same, pipelined x16
WORKER_RSS_GOAL_KB = 4096    # 4 MB (MiB, as VmRSS counts kB of 1024 bytes)
RESPAWN_GOAL_US = 5000       # kill -9 to a greeting from the replacement, median

GREETING_PID = re.compile(rb"\bpid (\d+)")


def fail(message):
    print(f"lib.py: {message}", file=sys.stderr)
    sys.exit(1)


def median(values):
    return statistics.median(values) if values else None


# ---------------------------------------------------------------------------
# Ports and readiness


def free_ports(count):
    """Distinct ports the kernel considers free now; all are held until all are
    chosen so that no port is returned twice."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_http(port, timeout_s):
    deadline = time.monotonic() + timeout_s
    last_error = "no attempt"
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            body = response.read()
            if response.status == 200:
                return body.decode("utf-8", "replace").splitlines()[0] if body else ""
            fail(f"port {port} answered GET / with {response.status} {response.reason}, not 200")
        except (OSError, http.client.HTTPException) as error:
            last_error = f"{type(error).__name__}: {error}"
        finally:
            connection.close()
        time.sleep(0.05)
    fail(f"nothing answered GET / with 200 on 127.0.0.1:{port} within {timeout_s} s (last: {last_error})")


def wait_greeting(port, timeout_s):
    deadline = time.monotonic() + timeout_s
    last_error = "no attempt"
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                line = b""
                while b"\n" not in line:
                    chunk = s.recv(256)
                    if not chunk:
                        break
                    line += chunk
                match = GREETING_PID.search(line)
                if match:
                    return int(match.group(1))
                last_error = f"greeting without a pid: {line!r}"
        except OSError as error:
            last_error = f"{type(error).__name__}: {error}"
        time.sleep(0.05)
    fail(f"no greeting 'node <id> pid <pid>' on 127.0.0.1:{port} within {timeout_s} s (last: {last_error})")


# ---------------------------------------------------------------------------
# Reading a results file


def read_results(path):
    records = {"config": {}, "run": [], "process": [], "kill": [], "event": []}
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                fail(f"{path}:{number}: not JSON ({error}): {line[:200]}")
            kind = record.get("kind")
            if kind == "config":
                records["config"] = record
            elif kind in records:
                records[kind].append(record)
            else:
                fail(f"{path}:{number}: unknown kind {kind!r}")
    return records


def mb(kb):
    return f"{kb / 1024:.1f} MB" if kb is not None else "-"


def goal(name, target, value, passed, note=""):
    return {"goal": name, "target": target, "value": value, "pass": passed, "note": note}


def process_summary(processes, server):
    """Every process of a server with its RSS; 'workers' are the processes that
    serve requests without being the supervisor (the figure the RSS goal is about)."""
    own = [p for p in processes if p["server"] == server]
    workers = [p for p in own if p["role"] == "worker"]
    worker_kb = [p["rss_kb"] for p in workers]
    return {
        "processes": [{k: p[k] for k in ("role", "serves", "pid", "rss_kb")} for p in own],
        "worker_rss_kb": worker_kb,
        "worker_rss_kb_sum": sum(worker_kb) if worker_kb else None,
        "worker_rss_kb_max": max(worker_kb) if worker_kb else None,
        "serving_rss_kb_sum": sum(p["rss_kb"] for p in own if p["serves"]) if own else None,
    }


# ---------------------------------------------------------------------------
# HTTP report

HTTP_MODES = ("keepalive", "pipelined")


def http_summary(records):
    config = records["config"]
    runs = records["run"]
    servers = config.get("servers") or sorted({r["server"] for r in runs})
    summary = {"benchmark": "http", "config": config, "servers": {}, "goals": [], "events": records["event"],
               "runs": [{"server": r["server"], "mode": r["mode"], "round": r["round"], "shares": r.get("shares", {})}
                        for r in runs]}

    def rps(run):
        wrk = run["wrk"]
        return wrk["requests"] / (wrk["duration_us"] / 1e6)

    by_key = {}
    for run in runs:
        by_key[(run["server"], run["mode"], run["round"])] = run

    for server in servers:
        entry = {}
        for mode in HTTP_MODES:
            own = sorted((r for r in runs if r["server"] == server and r["mode"] == mode), key=lambda r: r["round"])
            if not own:
                continue
            ratios = []
            for run in own:
                reference = by_key.get(("nginx", mode, run["round"]))
                if reference is not None and rps(reference) > 0:
                    ratios.append(rps(run) / rps(reference))
            errors = {}
            for run in own:
                for name, count in run["wrk"]["errors"].items():
                    errors[name] = errors.get(name, 0) + count
            entry[mode] = {
                "requests_per_s_median": median([rps(r) for r in own]),
                "requests_per_s_rounds": [round(rps(r)) for r in own],
                # wrk returns 0 for a percentile its coordinated-omission
                # correction pushed out of range (see docs/benchmarks.md): no figure.
                "p50_us_median": median([r["wrk"]["p50_us"] for r in own if r["wrk"]["p50_us"] > 0]),
                "p99_us_median": median([r["wrk"]["p99_us"] for r in own if r["wrk"]["p99_us"] > 0]),
                "p50_us_rounds": [r["wrk"]["p50_us"] or None for r in own],
                "p99_us_rounds": [r["wrk"]["p99_us"] or None for r in own],
                "ratio_to_nginx_median": median(ratios) if server != "nginx" else (1.0 if ratios else None),
                "ratio_to_nginx_rounds": [round(x, 3) for x in ratios],
                "errors": errors,
                "error_count": sum(errors.values()),
            }
        entry.update(process_summary(records["process"], server))
        summary["servers"][server] = entry

    multinode = summary["servers"].get("multinode")
    if multinode is not None:
        for mode, target in (("keepalive", KEEPALIVE_RATIO_GOAL), ("pipelined", PIPELINED_RATIO_GOAL)):
            figures = multinode.get(mode, {})
            ratio = figures.get("ratio_to_nginx_median")
            label = "keep-alive" if mode == "keepalive" else "pipelined x16"
            if ratio is None:
                summary["goals"].append(goal(f"{mode}_vs_nginx", f">= {target}x nginx", None, None,
                                             "not measured: nginx was not in this run"))
            elif figures.get("error_count"):
                summary["goals"].append(goal(f"{mode}_vs_nginx", f">= {target}x nginx", round(ratio, 3), False,
                                             f"multinode had {figures['error_count']} wrk errors ({label})"))
            else:
                summary["goals"].append(goal(f"{mode}_vs_nginx", f">= {target}x nginx", round(ratio, 3), ratio >= target))
        worst = multinode.get("worker_rss_kb_max")
        summary["goals"].append(goal("worker_rss", f"<= {WORKER_RSS_GOAL_KB} kB", worst,
                                     None if worst is None else worst <= WORKER_RSS_GOAL_KB,
                                     "" if worst is not None else "no worker process found"))
    return summary


def share_spread(shares):
    """(min, max, deviation from the mean in %) of one sample {"pid": connections}."""
    counts = list(shares.values())
    if not counts:
        return None
    mean = sum(counts) / len(counts)
    worst = max(abs(c - mean) for c in counts) / mean * 100 if mean else 0.0
    return min(counts), max(counts), worst


def print_shares(runs):
    """Connections per serving process, sampled with ss halfway through each run."""
    rows = []
    for run in runs:
        shares = run.get("shares")
        if not shares:
            continue
        low, high, worst = share_spread(shares)
        rows.append([run["server"], run["mode"], run["round"], len(shares),
                     " ".join(str(n) for n in sorted(shares.values(), reverse=True)),
                     f"{low}-{high}", f"{worst:.0f} %", "yes" if worst <= 25 else "no"])
    if not rows:
        return
    print("\nconnections per process, halfway through each run (ss; goal: within 25 % of the mean)")
    print_table(["server", "mode", "round", "processes", "connections each", "range", "worst vs mean", "<= 25 %"],
                rows)


def verdict(passed):
    return {True: "PASS", False: "FAIL", None: "n/a"}[passed]


def print_table(header, rows):
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    for row in [header] + rows:
        print("  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


def ms(us):
    return f"{us / 1000:.2f} ms" if us is not None else "-"


def print_http(summary):
    config = summary["config"]
    print(f"HTTP hello: {config.get('processes')} processes per server, "
          f"wrk -t1 -c{config.get('connections')} -d{config.get('duration_s')}s, "
          f"{config.get('rounds')} rounds in alternation ({' '.join(config.get('servers', []))})")
    print(f"  {config.get('date')} on {config.get('host')}; command: {config.get('command')}")
    for mode in HTTP_MODES:
        title = "keep-alive, one request per write" if mode == "keepalive" else \
            f"pipelined, {config.get('depth')} requests per write (latency is per batch)"
        print(f"\n{title}")
        rows = []
        for server, entry in summary["servers"].items():
            figures = entry.get(mode)
            if not figures:
                continue
            ratio = figures["ratio_to_nginx_median"]
            rows.append([server, f"{figures['requests_per_s_median']:,.0f}",
                         ms(figures["p50_us_median"]), ms(figures["p99_us_median"]),
                         f"{ratio:.2f}x" if ratio is not None else "-",
                         figures["error_count"],
                         " ".join(f"{x / 1000:.0f}k" for x in figures["requests_per_s_rounds"])])
        print_table(["server", "req/s (median)", "p50", "p99", "vs nginx", "errors", "each round"], rows)
    print("\nRSS after the load (VmRSS; workers = serving processes that do not supervise)")
    rows = []
    for server, entry in summary["servers"].items():
        workers = [p for p in entry["processes"] if p["role"] == "worker"]
        others = [p for p in entry["processes"] if p["role"] != "worker"]
        rows.append([server,
                     ", ".join(f"{mb(p['rss_kb'])} (pid {p['pid']})" for p in workers) or "-",
                     mb(entry["worker_rss_kb_sum"]),
                     ", ".join(f"{p['role']}{' (serves)' if p['serves'] else ''} {mb(p['rss_kb'])}" for p in others) or "-"])
    print_table(["server", "per worker", "workers' sum", "other processes"], rows)
    print_shares(summary.get("runs", []))
    print_events(summary["events"])
    print_goals(summary["goals"])


def print_events(events):
    if events:
        print("\nevents during the run")
        for event in events:
            print(f"  {event['server']}: {event['event']}")


def print_goals(goals):
    if not goals:
        print("\ngoals: multinode was not in this run")
        return
    print("\ngoals (multinode)")
    rows = []
    for g in goals:
        value = g["value"]
        if g["goal"] == "worker_rss" or g["goal"].endswith("rss"):
            shown = mb(value)
        elif g["goal"].startswith("respawn"):
            shown = ms(value)
        else:
            shown = f"{value:.2f}x" if value is not None else "-"
        rows.append([g["goal"], g["target"], shown, verdict(g["pass"]), g["note"]])
    print_table(["goal", "target", "measured", "", ""], rows)


# ---------------------------------------------------------------------------
# Respawn report


def respawn_summary(records):
    config = records["config"]
    kills = records["kill"]
    servers = config.get("servers") or sorted({k["server"] for k in kills})
    summary = {"benchmark": "respawn", "config": config, "servers": {}, "goals": [], "events": records["event"]}
    for server in servers:
        own = sorted((k for k in kills if k["server"] == server), key=lambda k: k["round"])
        times = [k["us"] for k in own if "us" in k]
        summary["servers"][server] = {
            "kills": len(own),
            "failed": [k for k in own if "us" not in k],
            "respawn_us_median": median(times),
            "respawn_us_min": min(times) if times else None,
            "respawn_us_max": max(times) if times else None,
            "respawn_us_rounds": times,
            "refused_connects": sum(k.get("refused", 0) for k in own),
            "dropped_connections": sum(k.get("dropped", 0) for k in own),
            **process_summary(records["process"], server),
        }
    multinode = summary["servers"].get("multinode")
    node = summary["servers"].get("node")
    if multinode is not None and node is not None:
        by_round = {k["round"]: k["us"] for k in kills if k["server"] == "multinode" and "us" in k}
        ratios = [k["us"] / by_round[k["round"]] for k in kills
                  if k["server"] == "node" and "us" in k and k["round"] in by_round and by_round[k["round"]] > 0]
        summary["node_over_multinode_median"] = median(ratios)
    if multinode is not None:
        value = multinode["respawn_us_median"]
        failed = len(multinode["failed"])
        summary["goals"].append(goal("respawn_median", f"<= {RESPAWN_GOAL_US / 1000:g} ms",
                                     value, None if value is None else (value <= RESPAWN_GOAL_US and not failed),
                                     f"{failed} kills without a replacement" if failed else ""))
        worst = multinode["worker_rss_kb_max"]
        summary["goals"].append(goal("worker_rss", f"<= {WORKER_RSS_GOAL_KB} kB", worst,
                                     None if worst is None else worst <= WORKER_RSS_GOAL_KB,
                                     "" if worst is not None else "no worker process found"))
    return summary


def print_respawn(summary):
    config = summary["config"]
    print(f"Respawn: kill -9 of the only worker until a replacement greets a new connection; "
          f"{config.get('rounds')} kills per server in alternation ({' '.join(config.get('servers', []))}), "
          f"each worker at least {config.get('interval_ms')} ms old when killed")
    print(f"  {config.get('date')} on {config.get('host')}; command: {config.get('command')}")
    print()
    rows = []
    for server, entry in summary["servers"].items():
        rows.append([server, ms(entry["respawn_us_median"]), ms(entry["respawn_us_min"]), ms(entry["respawn_us_max"]),
                     f"{entry['kills'] - len(entry['failed'])}/{entry['kills']}",
                     entry["refused_connects"], entry["dropped_connections"]])
    print_table(["server", "median", "min", "max", "replaced", "refused connects", "dropped connections"], rows)
    if summary.get("node_over_multinode_median") is not None:
        print(f"  Node cluster / multinode, median of per-round ratios: {summary['node_over_multinode_median']:.1f}x")
    print("\nRSS (VmRSS) at the end, the last replacement worker and its supervisor")
    rows = []
    for server, entry in summary["servers"].items():
        for p in entry["processes"]:
            rows.append([server, p["role"], p["pid"], mb(p["rss_kb"])])
    print_table(["server", "process", "pid", "RSS"], rows)
    print_events(summary["events"])
    print_goals(summary["goals"])


# ---------------------------------------------------------------------------


def main(argv):
    if len(argv) < 2:
        fail(__doc__)
    command, args = argv[1], argv[2:]
    if command == "free-ports" and len(args) == 1:
        print(" ".join(str(p) for p in free_ports(int(args[0]))))
    elif command == "wait-http" and len(args) == 2:
        print(wait_http(int(args[0]), float(args[1])))
    elif command == "wait-greeting" and len(args) == 2:
        print(wait_greeting(int(args[0]), float(args[1])))
    elif command in ("report-http", "report-respawn") and len(args) in (1, 2):
        as_json = args[1:] == ["--json"]
        if len(args) == 2 and not as_json:
            fail(f"unknown option {args[1]}")
        records = read_results(args[0])
        if command == "report-http":
            summary = http_summary(records)
            printer = print_http
        else:
            summary = respawn_summary(records)
            printer = print_respawn
        if as_json:
            print(json.dumps(summary, indent=2))
        else:
            printer(summary)
    else:
        fail(f"bad arguments: {' '.join(argv[1:])}\n{__doc__}")


if __name__ == "__main__":
    main(sys.argv)
