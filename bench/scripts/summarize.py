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
        if not (chat or ramp or idle):
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
        }

    print(f"## Results ({folder})\n")
    print("Medians of the runs; (min–max) where there were several.\n")
    print("| | " + " | ".join(rows) + " |")
    print("|---|" + "---|" * len(rows))

    def line(title, key, digits=1, scale=1.0):
        cells = []
        for r in rows.values():
            vals = [v * scale for v in r[key]]
            cells.append(fmt(med(vals), digits) + spread(vals, digits))
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

    def target(name, ok, got):
        print(f"- {'MET' if ok else 'MISSED'}: {name} — {got}")

    print()
    cpu = med(ours["cpu"])
    if cpu is not None:
        target("server CPU per push at 50k pushes/s ≤ 12 µs", cpu <= 12, f"{cpu:.2f} µs")
    p99 = med(ours["p99"])
    if p99 is not None:
        target("p99 push latency there ≤ 10 ms", p99 <= 10, f"{p99:.2f} ms")
    best = med(ours["best"])
    pom = [med(rows[s]["best"]) for s in ("pomelo", "pomelo-nodelay") if s in rows and rows[s]["best"]]
    pom = [p for p in pom if p]
    if best is not None and pom:
        ref = max(pom)
        target("max sustained ≥ 4× Pomelo's best variant", best >= 4 * ref,
               f"{best:,.0f} vs 4 × {ref:,.0f} = {4 * ref:,.0f}")
    elif best is not None:
        target("max sustained ≥ 250k pushes/s (no Pomelo step passed)", best >= 250000,
               f"{best:,.0f}")
    rss = med(ours["rss"])
    if rss is not None:
        target("RSS per idle connection ≤ 4 KB", rss <= 4, f"{rss:.2f} KB")
    if ours["idle_disc"]:
        d = max(ours["idle_disc"])
        n = min(ours["idle_conn"])
        target("10 000 idle connections held with no disconnects", d == 0 and n >= 10000,
               f"{n} connections, {d} disconnects")


if __name__ == "__main__":
    main()
