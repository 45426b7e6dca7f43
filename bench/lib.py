#!/usr/bin/env python3
"""The parts of bench/http.sh and bench/respawn.sh that are easier in Python
than in bash: picking ports, waiting for a server, and turning the measurements
of one run into medians, ratios and pass/fail. Standard library only.

    lib.py free-ports N                  N distinct free loopback TCP ports
    lib.py wait-http PORT TIMEOUT_S      until GET / answers 200; prints the body's first line
    lib.py wait-greeting PORT TIMEOUT_S  until a connection is greeted with "... pid N"; prints N
    lib.py report-http FILE [--json]     the HTTP report from a results file
    lib.py report-respawn FILE [--json]  the respawn report from a results file
    lib.py wait-answering PORT N TIMEOUT_S   GET / until N different pids answered "Hello from node ID (pid P)"; prints them
    lib.py respawn-http PORT PID TIMEOUT_S SUPERVISOR_PID [OLD_PID...]
                                         kill -9 PID, then GET / until a pid not in PID OLD_PID... answers;
                                         prints one JSON object (us, spawn_us, new_pid, answers, failed)
    lib.py report-run FILE [--json]      the bench/run.sh report (multinode run vs PM2) from a results file

A results file has one JSON object per line, each with a "kind":
  config   how the run was made (command, date, parameters, versions)
  run      one wrk run: server, mode (keepalive | pipelined), round, wrk (pipeline.lua's done() line)
  process  one process after the load: server, role, serves (bool), pid, rss_kb
  kill     one kill -9 measured by respawn_probe: server, round, old_pid, new_pid, us | error
  event    something that happened to a server during the run and must be shown: server, event
  (bench/run.sh adds load, reload, respawn and supervisor records: see run_summary)
Nothing is printed that was not measured in that file.
"""

import http.client
import json
import os
import re
import selectors
import signal
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


HELLO_PID = re.compile(rb"\r\n\r\nHello from node \S+ \(pid (\d+)\)\n")


def hello_pid(port):
    """GET / (Connection: close): the pid the answer names, or None."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/", headers={"Connection": "close"})
        response = connection.getresponse()
        match = HELLO_PID.search(b"\r\n\r\n" + response.read())
        return int(match.group(1)) if response.status == 200 and match else None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def wait_answering(port, count, timeout_s):
    deadline = time.monotonic() + timeout_s
    seen = set()
    while len(seen) < count and time.monotonic() < deadline:
        pid = hello_pid(port)
        if pid is None:
            time.sleep(0.05)
        else:
            seen.add(pid)
    if len(seen) < count:
        fail(f"only {len(seen)} of {count} processes answered GET / on 127.0.0.1:{port} within {timeout_s} s")
    return sorted(seen)


def children(pid):
    """The child pids of pid (every thread's /proc/PID/task/TID/children)."""
    found = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as file:
                found.update(int(x) for x in file.read().split())
    except OSError:
        pass
    return found


def respawn_http(port, victim, timeout_s, supervisor, old_pids, parallel=4, every_s=0.001):
    """kill -9 of victim, then GET / (Connection: close) on a new connection every
    `every_s` (at most `parallel` waiting at a time), until a response names a pid
    that is neither the victim nor one of old_pids: the time from the kill to that
    response. The same probe for every supervisor: what it sees is what a client
    sees (a replacement started but not yet answering does not count). Paced, so
    that the probe and the survivors answering it leave the CPUs to the
    replacement's start (a probe in a busy loop made it several times slower).
    spawn_us: when the supervisor's new child was first seen in /proc (polled
    every turn, about every millisecond): the supervisor's part of the time, the
    rest being the program's own start."""
    known = {victim, *old_pids}
    request = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    selector = selectors.DefaultSelector()
    answers = failed = 0
    result = None

    def open_one():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            return False
        selector.register(s, selectors.EVENT_WRITE, {"sent": False, "data": b""})
        return True

    started = time.monotonic_ns()
    os.kill(victim, signal.SIGKILL)
    deadline = started + int(timeout_s * 1e9)
    every_ns = int(every_s * 1e9)
    next_open = started
    spawned_ns = None
    try:
        while result is None and time.monotonic_ns() < deadline:
            if spawned_ns is None and children(supervisor) - known:
                spawned_ns = time.monotonic_ns() - started
            now = time.monotonic_ns()
            if now >= next_open and len(selector.get_map()) < parallel:
                next_open = now + every_ns
                if not open_one():
                    failed += 1
            wait_s = max(0, next_open - time.monotonic_ns()) / 1e9
            for key, _ in selector.select(timeout=wait_s):
                s, state = key.fileobj, key.data
                done = False
                try:
                    if not state["sent"]:
                        error = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if error:
                            raise OSError(error, os.strerror(error))
                        s.sendall(request)
                        state["sent"] = True
                        selector.modify(s, selectors.EVENT_READ, state)
                        continue
                    chunk = s.recv(4096)
                    if chunk:
                        state["data"] += chunk
                        continue
                    done = True
                    match = HELLO_PID.search(state["data"])
                    if match is None:
                        failed += 1
                    else:
                        answers += 1
                        pid = int(match.group(1))
                        if pid not in known:
                            result = (time.monotonic_ns() - started) / 1000, pid
                except OSError:
                    failed += 1
                    done = True
                if done:
                    selector.unregister(s)
                    s.close()
                if result is not None:
                    break
    finally:
        for key in list(selector.get_map().values()):
            key.fileobj.close()
        selector.close()
    if result is None:
        return {"error": f"no answer from a new pid within {timeout_s} s", "answers": answers, "failed": failed}
    return {"us": round(result[0], 1), "spawn_us": round(spawned_ns / 1000, 1) if spawned_ns is not None else None,
            "new_pid": result[1], "answers": answers, "failed": failed}


# ---------------------------------------------------------------------------
# Reading a results file


def read_records(path):
    """(line number, object) for each JSON object of a results file, one per line;
    a line that is not JSON ends the report with where it is."""
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            line = line.strip()
            if not line:
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as error:
                fail(f"{path}:{number}: not JSON ({error}): {line[:200]}")


def read_results(path):
    records = {"config": {}, "run": [], "process": [], "kill": [], "event": [],
               "load": [], "reload": [], "respawn": [], "supervisor": []}
    for number, record in read_records(path):
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
# bench/run.sh: `multinode run` against PM2's cluster mode (and the app alone)
#   load        one wrk run: server (alone | multinode | pm2), round, wrk (reliability.lua's line)
#   reload      one wrk run with reloads: server, round, wrk, reloads [{ms, complete}]
#   respawn     one kill -9: server, round, respawn_http's object
#   supervisor  the supervising process after the runs: server, pid, rss_kb, workers [{pid, rss_kb}]

RUN_SERVERS = ("alone", "multinode", "pm2")
RELOAD_FAILED_GOAL = 0          # failed requests over the reloads (PM2 measured 353)
RESPAWN_FRACTION_GOAL = 0.1     # multinode respawn <= 1/10 of PM2's
SUPERVISOR_RSS_FRACTION_GOAL = 0.1


def wrk_failed(wrk):
    return sum(wrk["errors"].values())


def wrk_rps(wrk):
    return wrk["requests"] / (wrk["duration_us"] / 1e6)


def run_summary(records):
    config = records["config"]
    summary = {"benchmark": "run", "config": config, "load": {}, "reload": {}, "respawn": {}, "supervisor": {},
               "goals": []}
    by_round = {(r["server"], r["round"]): r for r in records["load"]}
    for server in RUN_SERVERS:
        own = sorted((r for r in records["load"] if r["server"] == server), key=lambda r: r["round"])
        if not own:
            continue
        entry = {"requests_per_s_median": median([wrk_rps(r["wrk"]) for r in own]),
                 "requests_per_s_rounds": [round(wrk_rps(r["wrk"])) for r in own],
                 "failed": sum(wrk_failed(r["wrk"]) for r in own),
                 # Connections (ss, halfway through) held by the supervising process itself.
                 "held_by_supervisor": None if server == "alone" else
                 [r["shares"].get(str(r["supervisor_pid"]), 0) for r in own],
                 "held_by_others": [sum(v for k, v in r["shares"].items()
                                        if server == "alone" or k != str(r["supervisor_pid"])) for r in own]}
        for reference in ("alone", "pm2"):
            ratios = [wrk_rps(r["wrk"]) / wrk_rps(by_round[(reference, r["round"])]["wrk"]) for r in own
                      if (reference, r["round"]) in by_round and wrk_rps(by_round[(reference, r["round"])]["wrk"]) > 0]
            entry[f"ratio_to_{reference}_median"] = median(ratios)
        summary["load"][server] = entry
    for server in ("multinode", "pm2"):
        own = [r for r in records["reload"] if r["server"] == server]
        if own:
            reloads = [x for r in own for x in r["reloads"]]
            summary["reload"][server] = {
                "runs": len(own),
                "reloads": len(reloads),
                "reloads_complete": sum(1 for x in reloads if x["complete"]),
                "reload_ms": [x["ms"] for x in reloads],
                "requests": sum(r["wrk"]["requests"] for r in own),
                "requests_per_s_median": median([wrk_rps(r["wrk"]) for r in own]),
                "wrk_s": [round(r["wrk"]["duration_us"] / 1e6, 1) for r in own],
                "max_latency_us": max(r["wrk"]["max_latency_us"] for r in own),
                "failed": sum(wrk_failed(r["wrk"]) for r in own),
                "failed_per_run": [wrk_failed(r["wrk"]) for r in own],
                "errors": {k: sum(r["wrk"]["errors"][k] for r in own) for k in own[0]["wrk"]["errors"]},
            }
        kills = [k for k in records["respawn"] if k["server"] == server]
        if kills:
            times = [k["us"] for k in kills if "us" in k]
            spawns = [k["spawn_us"] for k in kills if k.get("spawn_us") is not None]
            summary["respawn"][server] = {
                "kills": len(kills), "replaced": len(times),
                "respawn_us_median": median(times), "respawn_us_rounds": times,
                "spawn_us_median": median(spawns), "spawn_us_rounds": spawns,
                "failed_probes": sum(k.get("failed", 0) for k in kills),
            }
        for record in records["supervisor"]:
            if record["server"] == server:
                summary["supervisor"][server] = record

    reload = summary["reload"].get("multinode")
    if reload:
        complete = reload["reloads_complete"] == reload["reloads"]
        summary["goals"].append(goal("reload_failed_requests", f"{RELOAD_FAILED_GOAL} failed", reload["failed"],
                                     reload["failed"] <= RELOAD_FAILED_GOAL and complete,
                                     "" if complete else f"only {reload['reloads_complete']} of "
                                                         f"{reload['reloads']} reloads completed"))
    mine, theirs = summary["respawn"].get("multinode"), summary["respawn"].get("pm2")
    if mine and theirs and mine["respawn_us_median"] and theirs["respawn_us_median"]:
        fraction = mine["respawn_us_median"] / theirs["respawn_us_median"]
        summary["goals"].append(goal("respawn_vs_pm2", f"<= {RESPAWN_FRACTION_GOAL:g} x PM2's", round(fraction, 3),
                                     fraction <= RESPAWN_FRACTION_GOAL and mine["replaced"] == mine["kills"]))
    mine, theirs = summary["supervisor"].get("multinode"), summary["supervisor"].get("pm2")
    if mine and theirs and theirs["rss_kb"]:
        fraction = mine["rss_kb"] / theirs["rss_kb"]
        summary["goals"].append(goal("supervisor_rss_vs_pm2", f"<= {SUPERVISOR_RSS_FRACTION_GOAL:g} x PM2's",
                                     round(fraction, 3), fraction <= SUPERVISOR_RSS_FRACTION_GOAL))
    return summary


def print_run(summary):
    config = summary["config"]
    workers = config.get("workers")
    print(f"multinode run vs PM2 cluster mode: the same Node.js app (bench/run_hello.js), {workers} workers each, "
          f"{config.get('rounds')} round(s) in alternation; multinode run --ready {config.get('ready')}")
    print(f"  {config.get('date')} on {config.get('host')}; {config.get('versions')}; build {config.get('commit')}")
    print(f"  command: {config.get('command')}")

    def ratio(value):
        return f"{value:.2f}x" if value is not None else "-"

    print(f"\nrequests/s, wrk -t1 -c{config.get('connections')} -d{config.get('duration_s')}s keep-alive "
          f"('alone': the app on one process, no supervisor)")
    rows = [[server, f"{e['requests_per_s_median']:,.0f}", ratio(e["ratio_to_alone_median"]),
             ratio(e["ratio_to_pm2_median"]), e["failed"],
             " ".join(f"{x / 1000:.1f}k" for x in e["requests_per_s_rounds"]),
             " ".join(map(str, e["held_by_supervisor"])) if e["held_by_supervisor"] is not None else "-",
             " ".join(map(str, e["held_by_others"]))]
            for server, e in summary["load"].items()]
    print_table(["server", "req/s (median)", "vs alone", "vs PM2", "failed", "each round",
                 "connections held by the supervisor", "by the serving processes (ss)"], rows)

    print(f"\nfailed requests over {config.get('reloads')} reloads during wrk -c{config.get('connections')} "
          f"-d{config.get('duration_s')}s (multinode reload / pm2 reload)")
    rows = [[server, f"{e['reloads_complete']}/{e['reloads']}", f"{e['requests']:,}",
             " ".join(f"{x:g}" for x in e["wrk_s"]), f"{e['requests_per_s_median']:,.0f}", ms(e["max_latency_us"]),
             e["failed"], " ".join(f"{k} {v}" for k, v in e["errors"].items()),
             f"median {median(e['reload_ms']):.0f} ms" if e["reload_ms"] else "-"]
            for server, e in summary["reload"].items()]
    print_table(["server", "reloads done", "requests", "wrk ran (s)", "req/s", "max latency", "failed", "errors",
                 "until all replaced (polled)"], rows)

    print("\nkill -9 of a worker until a request is answered by its replacement (lib.py respawn-http);"
          "\n  'new process': until the supervisor's new child appears (its part; the rest is Node's start)")
    rows = [[server, f"{e['replaced']}/{e['kills']}", ms(e["respawn_us_median"]),
             " ".join(f"{x / 1000:.1f}" for x in e["respawn_us_rounds"]), ms(e["spawn_us_median"]),
             e["failed_probes"]]
            for server, e in summary["respawn"].items()]
    print_table(["server", "replaced", "median", "each kill (ms)", "new process (median)", "failed probe requests"],
                rows)
    theirs, mine = summary["respawn"].get("pm2"), summary["respawn"].get("multinode")
    if theirs and mine and mine["respawn_us_median"] and theirs["respawn_us_median"]:
        print(f"  PM2 / multinode: {theirs['respawn_us_median'] / mine['respawn_us_median']:.1f}x until served", end="")
        if mine["spawn_us_median"] and theirs["spawn_us_median"]:
            print(f", {theirs['spawn_us_median'] / mine['spawn_us_median']:.1f}x until the new process", end="")
        print()

    print("\nRSS (VmRSS) of the supervisor (multinode's supervisor process; PM2's God daemon) and its workers")
    rows = [[server, e["pid"], mb(e["rss_kb"]), ", ".join(mb(w["rss_kb"]) for w in e["workers"]) or "-"]
            for server, e in summary["supervisor"].items()]
    print_table(["server", "supervisor pid", "supervisor RSS", "workers"], rows)
    theirs, mine = summary["supervisor"].get("pm2"), summary["supervisor"].get("multinode")
    if theirs and mine and mine["rss_kb"]:
        print(f"  PM2 / multinode: {theirs['rss_kb'] / mine['rss_kb']:.1f}x")

    print("\ngoals (multinode)")
    rows = [[g["goal"], g["target"], g["value"] if g["value"] is not None else "-", verdict(g["pass"]), g["note"]]
            for g in summary["goals"]]
    print_table(["goal", "target", "measured", "", ""], rows)


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
    elif command == "wait-answering" and len(args) == 3:
        print(" ".join(map(str, wait_answering(int(args[0]), int(args[1]), float(args[2])))))
    elif command == "respawn-http" and len(args) >= 4:
        print(json.dumps(respawn_http(int(args[0]), int(args[1]), float(args[2]), int(args[3]),
                                      [int(a) for a in args[4:]])))
    elif command in ("report-http", "report-respawn", "report-run") and len(args) in (1, 2):
        as_json = args[1:] == ["--json"]
        if len(args) == 2 and not as_json:
            fail(f"unknown option {args[1]}")
        records = read_results(args[0])
        if command == "report-http":
            summary = http_summary(records)
            printer = print_http
        elif command == "report-run":
            summary = run_summary(records)
            printer = print_run
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
