#!/usr/bin/env python3
"""Summarize a side_by_side.sh run: medians per system and scenario, ratios
against Pomelo, and the issue's targets. Input: a folder of
<system>-<scenario>-<run>.json files (one robot JSON report each).
Output: Markdown on stdout.

    python3 bench/scripts/summarize.py target/bench/<time>
"""
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

SYSTEMS = ["ours", "pomelo", "pomelo-nodelay"]


def load(folder):
    runs = defaultdict(list)  # (system, scenario) -> [report]
    for f in sorted(Path(folder).glob("*.json")):
        parts = f.stem.rsplit("-", 2)
        if len(parts) != 3:
            continue
        system, scenario, _ = parts
        try:
            runs[(system, scenario)].append(json.loads(f.read_text()))
        except json.JSONDecodeError as e:
            print(f"<!-- {f.name}: not JSON ({e}) -->")
    return runs


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=1):
    return "–" if v is None else f"{v:,.{digits}f}"


def spread(values, digits=1):
    values = [v for v in values if v is not None]
    if len(values) < 2 or min(values) == max(values):
        return ""
    return f" ({fmt(min(values), digits)}–{fmt(max(values), digits)})"


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "."
    runs = load(folder)
    rows = {}
    for system in SYSTEMS:
        chat = [r["steps"][0] for r in runs.get((system, "chat"), []) if r.get("steps")]
        ramp = runs.get((system, "ramp"), [])
        idle = [r["idle"] for r in runs.get((system, "idle"), []) if r.get("idle")]
        storm = [r["storm"] for r in runs.get((system, "storm"), []) if r.get("storm")]
        every = [r for (sy, _), rs in runs.items() if sy == system for r in rs]
        if not (chat or ramp or idle or storm):
            continue
        best = [(r.get("best") or {}).get("pushes_per_s", 0.0) for r in ramp]
        # What the machine was doing at the first failing step (or the last step).
        limit = []
        for r in ramp:
            steps = r.get("steps") or []
            fail = next((s for s in steps if not s["pass"]), steps[-1] if steps else None)
            if fail:
                limit.append(fail)
        rows[system] = {
            "n_chat": len(chat),
            "cpu": [s["server_cpu_us_per_push"] for s in chat],
            "p50": [s["push_p50_ms"] for s in chat],
            "p99": [s["push_p99_ms"] for s in chat],
            "pps": [s["pushes_per_s"] for s in chat],
            "deliv": [s["delivery"] for s in chat],
            "robot": [s["robot_cores"] for s in chat],
            "n_ramp": len(ramp),
            "best": best,
            "limit_srv": [s["server_cores"] for s in limit],
            "limit_robot": [s["robot_cores"] for s in limit],
            "limit_p99": [s["push_p99_ms"] for s in limit],
            "limit_deliv": [s["delivery"] for s in limit],
            "limit_pps": [s["pushes_per_s"] for s in limit],
            "n_idle": len(idle),
            "rss": [i["rss_per_conn_kb"] for i in idle],
            "rss_end": [i["rss_per_conn_end_kb"] for i in idle],
            "idle_conn": [i["connected"] for i in idle],
            "idle_disc": [i["disconnects"] for i in idle],
            "idle_robot": [i.get("robot_cores_hold") for i in idle],
            "n_storm": len(storm),
            "storm_users": [s["users"] for s in storm],
            "storm_s": [s["total_s"] for s in storm],
            "storm_rate": [s["logins_per_s"] for s in storm],
            "storm_p50": [s["login_p50_ms"] for s in storm],
            "storm_p99": [s["login_p99_ms"] for s in storm],
            "storm_err": [s["errors"] for s in storm],
            "storm_kinds": [s.get("errors_by_kind") or {} for s in storm],
            "storm_srv": [s["server_cores"] for s in storm],
            "storm_cpu": [s["server_cpu_ms_per_login"] for s in storm],
            "storm_robot": [s["robot_cores"] for s in storm],
            # Machine load: 1-minute load average before and after each run.
            "load_before": [(r.get("machine") or {}).get("loadavg_before", [None])[0] for r in every],
            "load_after": [(r.get("machine") or {}).get("loadavg_after", [None])[0] for r in every],
            "load_chat": [s.get("loadavg_1m") for s in chat],
        }

    print(f"## Results ({folder})\n")
    print("Medians of the runs; (min–max) where there were several.\n")
    print("| | " + " | ".join(rows) + " |")
    print("|---|" + "---|" * len(rows))

    def line(title, key, digits=1, scale=1.0):
        """One row; skipped when no system has a value (older JSON, or a
        scenario not run)."""
        cells = []
        for r in rows.values():
            vals = [v * scale for v in r[key] if v is not None]
            cells.append(fmt(med(vals), digits) + spread(vals, digits))
        if any(c != "–" for c in cells):
            print(f"| {title} | " + " | ".join(cells) + " |")

    line("chat 50k: server CPU µs per push", "cpu", 2)
    line("chat 50k: push p50 ms", "p50", 2)
    line("chat 50k: push p99 ms", "p99", 2)
    line("chat 50k: pushes/s delivered", "pps", 0)
    line("chat 50k: delivery %", "deliv", 3, 100.0)
    line("chat 50k: robot cores", "robot", 2)
    line("ramp: max pushes/s (delivery ≥ 99.9 %, p99 ≤ 50 ms)", "best", 0)
    line("ramp, first failing step: pushes/s", "limit_pps", 0)
    line("ramp, first failing step: p99 ms", "limit_p99", 1)
    line("ramp, first failing step: server cores", "limit_srv", 2)
    line("ramp, first failing step: robot cores", "limit_robot", 2)
    line("idle: connections on one connector", "idle_conn", 0)
    line("idle: RSS KB per connection", "rss", 2)
    line("idle: RSS KB per connection, end of hold", "rss_end", 2)
    line("idle: disconnects", "idle_disc", 0)
    line("idle: robot cores during the hold", "idle_robot", 2)
    line("storm: users", "storm_users", 0)
    line("storm: seconds to log in all", "storm_s", 2)
    line("storm: logins/s", "storm_rate", 0)
    line("storm: login p50 ms", "storm_p50", 1)
    line("storm: login p99 ms", "storm_p99", 1)
    line("storm: failed logins", "storm_err", 0)
    line("storm: server cores", "storm_srv", 2)
    line("storm: server CPU ms per login", "storm_cpu", 2)
    line("storm: robot cores", "storm_robot", 2)
    line("load: 1-min load average before a run", "load_before", 2)
    line("load: 1-min load average after a run", "load_after", 2)
    line("load: at the end of the chat 50k step", "load_chat", 2)
    kinds = {}
    for system, r in rows.items():
        for k in r["storm_kinds"]:
            for kind, n in k.items():
                kinds.setdefault(system, {}).setdefault(kind, 0)
                kinds[system][kind] += n
    for system, k in kinds.items():
        print(f"\nstorm errors of {system} (all runs): " + ", ".join(f"{n} × {kind}" for kind, n in sorted(k.items())))

    ours = rows.get("ours")
    if not ours:
        return
    print("\n### Ratios and targets\n")
    for ref in ("pomelo", "pomelo-nodelay"):
        p = rows.get(ref)
        if not p:
            continue
        cpu_o, cpu_p = med(ours["cpu"]), med(p["cpu"])
        if cpu_o and cpu_p:
            print(f"- CPU per push: {ref} / ours = {cpu_p / cpu_o:.2f}×")
        b_o, b_p = med(ours["best"]), med(p["best"])
        if b_o and b_p:
            print(f"- max sustained pushes/s: ours / {ref} = {b_o / b_p:.2f}×")
        r_o, r_p = med(ours["rss"]), med(p["rss"])
        if r_o and r_p and r_o > 0:
            print(f"- RSS per idle connection (all open): {ref} / ours = {r_p / r_o:.2f}×")
        r_o, r_p = med(ours["rss_end"]), med(p["rss_end"])
        if r_o and r_p and r_o > 0:
            print(f"- RSS per idle connection (end of hold): {ref} / ours = {r_p / r_o:.2f}×")
        s_o, s_p = med(ours["storm_s"]), med(p["storm_s"])
        if s_o and s_p:
            print(f"- login storm, time to log in all: {ref} / ours = {s_p / s_o:.2f}×")

    def target(name, ok, got):
        print(f"- {'MET' if ok else 'MISSED'}: {name} — {got}")

    print("\nTargets (issue 13):\n")
    cpu = med(ours["cpu"])
    if cpu is not None:
        target("server CPU per push at 50k pushes/s ≤ 10 µs", cpu <= 10, f"{cpu:.2f} µs")
    p99 = med(ours["p99"])
    if p99 is not None:
        target("push p99 there ≤ 5 ms", p99 <= 5, f"{p99:.2f} ms")
    best = med(ours["best"])
    nodelay = med(rows["pomelo-nodelay"]["best"]) if "pomelo-nodelay" in rows else None
    if best is not None:
        ok = best >= 250000 and (nodelay is None or best >= 5 * nodelay)
        ref = f" vs 5 × {nodelay:,.0f} = {5 * nodelay:,.0f} (Pomelo NODELAY)" if nodelay else ""
        target("max sustained ≥ 250 000 pushes/s and ≥ 5× Pomelo NODELAY", ok, f"{best:,.0f}{ref}")
    rss = med(ours["rss"])
    if rss is not None:
        target("RSS per idle connection ≤ 2 KB (10 000)", rss <= 2, f"{rss:.2f} KB")
    if ours["storm_s"]:
        t, err, users = max(ours["storm_s"]), sum(ours["storm_err"]), min(ours["storm_users"])
        target("login storm: 10 000 users in ≤ 10 s, 0 errors (slowest run)",
               users >= 10000 and t <= 10 and err == 0, f"{users} users, {t:.2f} s, {err} errors")
    print("\n(100 000 connections: bench/scripts/connections_100k.sh writes its own JSON.)")


if __name__ == "__main__":
    main()
