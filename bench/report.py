#!/usr/bin/env python3
"""bench/report.py RESULTS_DIR -- the report of bench/run.sh.

Prints the shared harness's tables (bench_table.py) for every workload, then smtpd's figures as
ratios to each peer, the memory figures, and issue 7's targets with met / NOT MET. All figures
are medians over the reps in RESULTS_DIR (results.jsonl from smtpbench, memory.jsonl from
idle_and_large.py). Ratios compare servers measured in the same run only.
"""
import json
import os
import statistics
import subprocess
import sys
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS = os.environ.get("HARNESS", os.path.join(HERE, "..", "..", "shared", "bench"))
ME = "smtpd"
WL_ORDER = ["a", "b", "a10", "b10", "c", "c200", "d", "src", "srcc", "t"]
WL_NAME = {
    "a": "a: 1 KiB keep-alive",
    "b": "b: a + AUTH PLAIN",
    "a10": "a10: 10 msg/conn",
    "b10": "b10: a10 + AUTH",
    "c": "c: conn+EHLO+AUTH+QUIT",
    "c200": "c200: c, 200 concurrent",
    "d": "d: 10 MiB bodies",
    "src": "src: smtp-source -d",
    "srcc": "srcc: smtp-source 1/conn",
    "t": "t: STARTTLS+AUTH per conn",
}


def load(path):
    rows = []
    try:
        with open(path) as f:
            for ln in f:
                ln = ln.strip()
                if ln and not ln.startswith("#"):
                    try:
                        rows.append(json.loads(ln))
                    except ValueError:
                        pass
    except OSError:
        pass
    return rows


def group(rows):
    """{(peer, workload): [row, ...]} from labels "peer/workload/rep"."""
    cells = defaultdict(list)
    for r in rows:
        parts = r.get("label", "").split("/")
        if len(parts) == 3:
            cells[(parts[0], parts[1])].append(r)
    return cells


def med(rows, get):
    vals = [v for v in (get(r) for r in rows) if v is not None]
    return statistics.median(vals) if vals else None


def bad(rows):
    return any(r.get("fail") or r.get("timed_out") or r.get("unsent") for r in rows)


def throughput(r):
    return r.get("mib_per_s") if r["label"].split("/")[1] == "d" else r.get("rate_per_s")


def cpu(r):
    return (r.get("server") or {}).get("cpu_us_per_op")


def hwm_mib(r):
    kb = (r.get("server") or {}).get("VmHWM_kB")
    return kb / 1024 if kb else None


def num(v, nd=0):
    return "-" if v is None else f"{v:,.{nd}f}"


def ratio(a, b):
    return "-" if a is None or not b else f"{a / b:.2f}×"


def main(out):
    res = os.path.join(out, "results.jsonl")
    rows = load(res)
    mem = group(load(os.path.join(out, "memory.jsonl")))
    cells = group(rows)
    peers = [p for p in dict.fromkeys(k[0] for k in cells) if p != ME]
    wls = [w for w in WL_ORDER if any(k[1] == w for k in cells)]
    reps = max((len(v) for v in cells.values()), default=0)

    if rows:
        sys.stdout.flush()
        subprocess.run([sys.executable, os.path.join(HARNESS, "bench_table.py"), res], check=False)

    print(f"\n### smtpd against each peer (medians of up to {reps} reps; '!' = a rep failed)\n")
    print("Throughput ratio = smtpd / peer (higher is better); CPU ratio = smtpd's server CPU per"
          " message or connection / the peer's (lower is better). d's throughput is MiB/s.\n")
    print("| workload | smtpd throughput | smtpd CPU µs/op | smtpd peak RSS MiB | "
          + " | ".join(f"vs {p}: throughput, CPU" for p in peers) + " |")
    print("|---" * (4 + len(peers)) + "|")
    for w in wls:
        mine = cells.get((ME, w), [])
        if not mine:
            continue
        t, c = med(mine, throughput), med(mine, cpu)
        cols = []
        for p in peers:
            theirs = cells.get((p, w), [])
            if not theirs:
                cols.append("-")
                continue
            flag = " !" if bad(theirs) else ""
            cols.append(f"{ratio(t, med(theirs, throughput))}, {ratio(c, med(theirs, cpu))}{flag}")
        print(f"| {WL_NAME.get(w, w)} | {num(t)}{' !' if bad(mine) else ''} | {num(c)} | "
              f"{num(med(mine, hwm_mib), 1)} | " + " | ".join(cols) + " |")

    idle = mem.get((ME, "idle"), [])
    larges = {k[1]: v for k, v in mem.items() if k[0] == ME and k[1].startswith("large-")}
    if idle or larges:
        print("\n### smtpd memory (medians)\n")
        print("| measure | result |")
        print("|---|---|")
        if idle:
            print(f"| {num(med(idle, lambda r: r['conns']))} idle connections after EHLO "
                  f"({num(med(idle, lambda r: r['failed']))} failed) | RSS "
                  f"{num(med(idle, lambda r: r['rss_before_kib'] / 1024), 1)} MiB before, "
                  f"{num(med(idle, lambda r: r['rss_kib'] / 1024), 1)} MiB with them |")
        for name, rs in sorted(larges.items()):
            print(f"| {num(med(rs, lambda r: r['mib']))} MiB message, {name[6:]} handler "
                  f"({'accepted' if all(r['accepted'] for r in rs) else 'NOT accepted'}) | "
                  f"peak RSS growth {num(med(rs, lambda r: r['growth_kib'] / 1024), 1)} MiB, "
                  f"{num(med(rs, lambda r: r['mib_per_s']))} MiB/s |")

    print("\n### Issue 7 targets\n")
    print("| target | smtpd | peer | ratio | goal | |")
    print("|---|---|---|---|---|---|")

    def target(name, w, peer, get, goal, ok, unit="", nd=0):
        mine, theirs = cells.get((ME, w), []), cells.get((peer, w), [])
        if not mine or (peer and not theirs):
            print(f"| {name} | - | - | - | {goal} | not measured |")
            return
        a = med(mine, get)
        b = med(theirs, get) if peer else None
        r = a / b if a is not None and b else None
        good = a is not None and ok(a, r) and not bad(mine)
        print(f"| {name} | {num(a, nd)}{unit} | {peer + ' ' + num(b, nd) + unit if peer else ''} | "
              f"{'-' if r is None else f'{r:.2f}×'} | {goal} | {'met' if good else 'NOT MET'} |")

    target("a: server CPU per message", "a", "smtp-sink", cpu, "≤ 1.00× smtp-sink",
           lambda a, r: r is not None and r <= 1.0, " µs")
    target("a: msg/s", "a", "smtp-sink", throughput, "≥ 0.95× smtp-sink",
           lambda a, r: r is not None and r >= 0.95)
    target("src (smtp-source): msg/s", "src", "smtp-sink", throughput, "≥ 0.95× smtp-sink",
           lambda a, r: r is not None and r >= 0.95)
    target("c: server CPU per AUTH PLAIN connection", "c", "go-smtp", cpu, "≤ 0.70× go-smtp",
           lambda a, r: r is not None and r <= 0.7, " µs")
    target("d: MiB/s", "d", "smtp-sink", throughput, "≥ 1.00× smtp-sink",
           lambda a, r: r is not None and r >= 1.0)
    target("d: server CPU per 10 MiB message", "d", "smtp-sink", cpu, "≤ 1.00× smtp-sink",
           lambda a, r: r is not None and r <= 1.0, " µs")
    target("d: peak RSS", "d", "", hwm_mib, "≤ 16 MiB", lambda a, r: a <= 16, " MiB", 1)
    target("t: server CPU per STARTTLS+AUTH connection", "t", "go-smtp", cpu, "≤ 1.00× go-smtp",
           lambda a, r: r is not None and r <= 1.0, " µs")
    if idle:
        held = med(idle, lambda r: r["rss_kib"] / 1024)
        full = med(idle, lambda r: r["conns"]) >= 10000 and not any(r["failed"] for r in idle)
        print(f"| 10,000 idle connections: RSS | {num(held, 1)} MiB | | | ≤ 64 MiB | "
              f"{'met' if full and held <= 64 else 'NOT MET'} |")
    else:
        print("| 10,000 idle connections: RSS | - | | | ≤ 64 MiB | not measured |")
    for name, rs in sorted(larges.items()):
        g = med(rs, lambda r: r["growth_kib"] / 1024)
        ok = all(r["accepted"] for r in rs) and med(rs, lambda r: r["mib"]) >= 100
        print(f"| 100 MiB message, {name[6:]}: peak RSS growth | {num(g, 1)} MiB | | | ≤ 16 MiB | "
              f"{'met' if ok and g <= 16 else 'NOT MET'} |")
    if not larges:
        print("| 100 MiB message: peak RSS growth | - | | | ≤ 16 MiB | not measured |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
