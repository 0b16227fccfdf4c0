#!/usr/bin/env python3
"""bench/loadgen_report.py RESULTS_DIR -- the report of bench/run.sh, in Markdown.

Reads RESULTS_DIR/results.jsonl (one loadgen JSON line per run, labelled peer/workload/rep) and
memory.jsonl (bench/idle_and_large.py), and prints: the figures of every workload and peer
(medians over reps, [min-max] for throughput), smtpd's ratios to each peer, and the target table
of issue 19 with met / NOT MET.

A row is generator-bound ("gen-bound") when the generator's median CPU was at least 90 % of its
core while the server's was under 90 %: the throughput is then the generator's, so the row is
marked and used for no ratio.

  bench/loadgen_report.py --line < one.json     # one run as one line, for run.sh's progress
  bench/loadgen_report.py --strace TRACE RUN    # strace -c's summary TRACE of the server
                                                # during loadgen's run RUN (its JSON line), as
                                                # one JSON line; exit 1 if a message failed
"""
import json
import os
import statistics
import sys
from collections import defaultdict

ME = "smtpd"
BOUND = 90.0
WORKLOADS = [
    ("keepalive", "1 KiB keep-alive, 20 connections"),
    ("keepalive-pipe", "1 KiB keep-alive, PIPELINING"),
    ("keepalive-auth", "1 KiB keep-alive + AUTH PLAIN once"),
    ("p80", "keep-alive at 80 % of its saturation rate (open loop)"),
    ("ramp", "keep-alive, offered rate raised to saturation (open loop)"),
    ("conn-per-msg", "one connection per 1 KiB message"),
    ("conn-auth", "connect + EHLO + AUTH PLAIN + QUIT"),
    ("big", "10 MiB messages, 4 connections"),
    ("starttls-auth", "STARTTLS + AUTH PLAIN per connection, full handshake"),
    ("starttls-resume", "STARTTLS + AUTH PLAIN per connection, TLS 1.3 resumption"),
    ("implicit-tls-auth", "implicit TLS + AUTH PLAIN per connection"),
    ("scram", "connect + EHLO + AUTH SCRAM-SHA-256 + QUIT"),
]
PEERS = [ME, "smtpd-metrics", "smtpd-jetstream", "floor", "smtp-sink", "go-smtp", "smtp-server", "aiosmtpd"]


def load(path):
    rows = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        rows.append(json.loads(line))
                    except ValueError:
                        pass
    except OSError:
        pass
    return rows


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(x, digits=0):
    if x is None:
        return "-"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def line(r):
    flag = " GEN-BOUND" if gen_bound(r.get("gen_cpu_pct"), r.get("server_cpu_pct")) else ""
    step = f" step {r['ramp_step']}" if "ramp_step" in r else ""
    rate = f" offered {fmt(r['rate_offered'])}/s" if r.get("rate_offered") else ""
    err = f" first error: {r['first_error']}" if r.get("first_error") else ""
    return (f"{r['label']}{step}:{rate} {fmt(r['throughput'])} {r['unit']}/s, "
            f"{r['failures']} failed, p50/p99 {fmt(r['p50_ms'], 3)}/{fmt(r['p99_ms'], 3)} ms, "
            f"server {fmt(r['server_cpu_pct'])} % CPU {fmt(r['server_us_per_unit'], 1)} us/{r['unit']}, "
            f"generator {fmt(r['gen_cpu_pct'])} % CPU {fmt(r['gen_us_per_unit'], 1)} us/{r['unit']}, "
            f"server peak RSS {fmt(r['server_rss_mib'], 1)} MiB{flag}{err}")


def gen_bound(gen, server):
    return gen is not None and gen >= BOUND and (server is None or server < BOUND)


class Cell:
    """The medians of one (peer, workload) over its reps."""

    def __init__(self, rows):
        self.rows = rows
        self.unit = rows[0]["unit"]
        self.thr = med(rows, "throughput")
        self.thr_min = min(r["throughput"] for r in rows)
        self.thr_max = max(r["throughput"] for r in rows)
        self.mib_s = med(rows, "mib_s")
        self.cpu = med(rows, "server_us_per_unit")
        self.server_pct = med(rows, "server_cpu_pct")
        self.gen_pct = med(rows, "gen_cpu_pct")
        self.gen_cpu = med(rows, "gen_us_per_unit")
        self.p50 = med(rows, "p50_ms")
        self.p99 = med(rows, "p99_ms")
        self.rss = med(rows, "server_rss_mib")
        self.rate = med(rows, "rate_offered")
        self.failures = sum(r["failures"] for r in rows)
        self.resumed = sum(r.get("tls_resumed") or 0 for r in rows)
        self.count = sum(r["count"] for r in rows)
        self.gen_bound = gen_bound(self.gen_pct, self.server_pct)

    def flag(self):
        if self.gen_bound:
            return "**gen-bound**"
        if self.server_pct is not None and self.server_pct >= BOUND:
            if self.gen_pct is not None and self.gen_pct >= BOUND:
                return "both >= 90 %"
            return "server-bound"
        return "neither"


def cells(rows):
    by = defaultdict(list)
    for r in rows:
        parts = r.get("label", "").split("/")
        if len(parts) != 3:
            continue
        peer, wl, _rep = parts
        if wl == "ramp" and r.get("ramp_step") != 0:
            continue  # the ramp's steps; its saturation line has ramp_step 0
        by[(peer, wl)].append(r)
    return {k: Cell(v) for k, v in by.items()}


READS = ("read", "readv", "recvfrom", "recvmsg")
WRITES = ("write", "writev", "sendto", "sendmsg")


def strace_summary(path, run):
    """strace -c's table (calls and errors per system call) with the run's label and count."""
    calls, errors = {}, {}
    with open(path) as f:
        for raw in f:
            cols = raw.split()
            # "% time  seconds  usecs/call  calls  [errors]  syscall"; the total line too.
            if len(cols) < 5 or not cols[3].isdigit():
                continue
            name = cols[-1]
            calls[name] = int(cols[3])
            if len(cols) == 6 and cols[4].isdigit():
                errors[name] = int(cols[4])
    return {"label": run["label"], "messages": run["count"], "calls": calls, "errors": errors}


def per_message(s, names, table="calls"):
    return sum(s[table].get(n, 0) for n in names) / s["messages"]


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def report(out):
    rows = load(os.path.join(out, "results.jsonl"))
    mem = load(os.path.join(out, "memory.jsonl"))
    c = cells(rows)
    p = []
    p.append("# smtpd benchmark (bench/run.sh)\n")
    try:
        with open(os.path.join(out, "meta.txt")) as f:
            p.append("```\n" + f.read().rstrip() + "\n```\n")
    except OSError:
        pass
    p.append("Medians over reps. Server pinned to CPU 0, generator (bench/loadgen) to CPU 1. "
             "CPU % is of one core; us/unit is CPU time per message (msg) or per connection "
             "(conn). *gen-bound*: generator >= 90 % CPU while the server < 90 %: its "
             "throughput is the generator's and the row is used for no ratio. *server-bound*: "
             "server >= 90 %. *both >= 90 %*: the server saturated, and so nearly did the generator "
             "(used in ratios, but a faster server could not show more here). *neither*: neither process filled its core (latency-bound, or "
             "the machine was busy with other work).\n")
    peers = [x for x in PEERS if any(k[0] == x for k in c)]
    peers += sorted({k[0] for k in c} - set(peers))
    for wl, title in WORKLOADS:
        present = [x for x in peers if (x, wl) in c]
        if not present:
            continue
        p.append(f"## {wl}: {title}\n")
        extra = " | MiB/s" if wl == "big" else (" | offered /s" if wl == "p80" else "")
        extra += " | resumed" if wl.startswith(("starttls", "implicit")) else ""
        p.append(f"| peer | reps | throughput [min-max] | server us/unit | server CPU % | "
                 f"generator CPU % | generator us/unit | p50 ms | p99 ms | peak RSS MiB | "
                 f"failed | bound{extra} |")
        p.append("|---" * (12 + extra.count("|")) + "|")
        for peer in present:
            x = c[(peer, wl)]
            more = ""
            if wl == "big":
                more += f" | {fmt(x.mib_s)}"
            if wl == "p80":
                more += f" | {fmt(x.rate)}"
            if wl.startswith(("starttls", "implicit")):
                more += f" | {x.resumed}/{x.count}"
            p.append(f"| {peer} | {len(x.rows)} | {fmt(x.thr)} {x.unit}/s [{fmt(x.thr_min)}-"
                     f"{fmt(x.thr_max)}] | {fmt(x.cpu, 1)} | {fmt(x.server_pct)} | "
                     f"{fmt(x.gen_pct)} | {fmt(x.gen_cpu, 1)} | {fmt(x.p50, 3)} | "
                     f"{fmt(x.p99, 3)} | {fmt(x.rss, 1)} | {x.failures} | {x.flag()}{more} |")
        p.append("")

    p.append("## smtpd / peer\n")
    p.append("Throughput: higher is better for smtpd; server CPU per unit and p99: lower is "
             "better. `-`: a side is missing, or gen-bound.\n")
    others = [x for x in peers if x != ME]
    if others:
        p.append("| workload | " + " | ".join(f"{o}: thr / CPU / p99" for o in others) + " |")
        p.append("|---" * (1 + len(others)) + "|")
        for wl, _ in WORKLOADS:
            me = c.get((ME, wl))
            if me is None:
                continue
            cols = []
            for o in others:
                them = c.get((o, wl))
                if them is None or me.gen_bound or them.gen_bound:
                    cols.append("-")
                    continue
                thr = ratio(me.thr, them.thr) if wl != "p80" else None
                cols.append(f"{fmt(thr, 2)} / {fmt(ratio(me.cpu, them.cpu), 2)} / "
                            f"{fmt(ratio(me.p99, them.p99), 2)}")
            p.append(f"| {wl} | " + " | ".join(cols) + " |")
        p.append("")

    traced = [m for m in load(os.path.join(out, "syscalls.jsonl")) if m.get("messages")]
    if traced:
        p.append("## syscalls: smtpd's system calls per message, pipelined keep-alive under "
                 "strace -c\n")
        names = sorted({n for m in traced for n in m["calls"] if n != "total"},
                       key=lambda n: -statistics.median(m["calls"].get(n, 0) for m in traced))
        p.append("| system call | calls per message | failed per message |")
        p.append("|---|---|---|")
        for n in names + ["total"]:
            calls = statistics.median(per_message(m, [n]) for m in traced)
            if calls >= 0.001:
                failed = statistics.median(per_message(m, [n], "errors") for m in traced)
                p.append(f"| {n} | {calls:.3f} | {failed:.3f} |")
        p.append(f"\n({len(traced)} reps; {traced[0]['messages']:,} messages each, connection "
                 "set-up and the server's start included.)\n")

    p.append("## Targets of issue 19\n")
    p.append("| target | smtpd | compared with | ratio | goal | result |")
    p.append("|---|---|---|---|---|---|")

    def target(name, wl, attr, peer_wl, peer, goal, higher):
        me, them = c.get((ME, wl)), c.get((peer, peer_wl))
        label = f"{peer} {peer_wl}" if peer != ME else f"smtpd {peer_wl}"
        if me is None or them is None:
            p.append(f"| {name} | - | {label}: - | - | {goal} | not measured |")
            return
        a, b = getattr(me, attr), getattr(them, attr)
        r = ratio(a, b)
        if me.gen_bound or them.gen_bound:
            verdict = "not judged (gen-bound)"
        elif r is None:
            verdict = "not measured"
        else:
            lim = float(goal.split("x")[0].lstrip("<>= "))
            ok = r >= lim if higher else r <= lim
            verdict = "met" if ok else "**NOT MET**"
        p.append(f"| {name} | {fmt(a, 3 if attr == 'p99' else 1)} | {label}: "
                 f"{fmt(b, 3 if attr == 'p99' else 1)} | {fmt(r, 2)} | {goal} | {verdict} |")

    for wl, what in (("keepalive", "1 KiB keep-alive"), ("keepalive-pipe", "1 KiB pipelined")):
        target(f"{what}: throughput at saturation", wl, "thr", wl, "smtp-sink", ">= 1.25x", True)
        target(f"{what}: throughput at saturation", wl, "thr", wl, "go-smtp", ">= 1.25x", True)
        target(f"{what}: server CPU per message", wl, "cpu", wl, "smtp-sink", "<= 0.75x", False)
    target("p99 latency at 80 % load", "p80", "p99", "p80", "smtp-sink", "<= 1.0x", False)
    target("connect+EHLO+AUTH PLAIN+QUIT: CPU per connection", "conn-auth", "cpu", "conn-auth",
           "go-smtp", "<= 0.5x", False)
    floor, go = c.get(("floor", "conn-auth")), c.get(("go-smtp", "conn-auth"))
    if floor is not None and go is not None and go.cpu:
        p.append(f"| (reference) the floor, canned replies only: CPU per connection | "
                 f"floor {fmt(floor.cpu, 1)} | go-smtp conn-auth: {fmt(go.cpu, 1)} | "
                 f"{fmt(ratio(floor.cpu, go.cpu), 2)} | - | the least a tokio server costs here"
                 f"{' (an upper bound: gen-bound)' if floor.gen_bound else ''} |")
    target("STARTTLS+AUTH: CPU per connection", "starttls-auth", "cpu", "starttls-auth",
           "go-smtp", "<= 0.6x", False)
    target("implicit TLS+AUTH: CPU per connection", "implicit-tls-auth", "cpu",
           "implicit-tls-auth", "go-smtp", "<= 0.6x", False)
    target("resumed STARTTLS connection vs full handshake: CPU", "starttls-resume", "cpu",
           "starttls-auth", ME, "<= 0.5x", False)
    target("SCRAM-SHA-256 login vs PLAIN login: CPU", "scram", "cpu", "conn-auth", ME,
           "<= 2x", False)
    idle = [m for m in mem if m.get("label", "").startswith(ME + "/idle/")]
    if idle:
        rss = statistics.median(m["rss_kib"] for m in idle) / 1024
        conns = statistics.median(m["conns"] for m in idle)
        verdict = ("met" if rss <= 40 else "**NOT MET**") if conns >= 10000 else \
            f"not judged ({conns:.0f} connections, not 10,000)"
        p.append(f"| idle connections after EHLO: server RSS | {rss:.1f} MiB with {conns:,.0f} "
                 f"| - | - | <= 40 MiB at 10,000 | {verdict} |")
    else:
        p.append("| idle connections after EHLO: server RSS | - | - | - | <= 40 MiB at 10,000 "
                 "| not measured |")
    if traced:
        # The closed-loop pipelined client sends one group per message (the body's end with the
        # next MAIL, RCPT and DATA) and waits for its replies: one read and one write each.
        reads = statistics.median(per_message(m, READS) for m in traced)
        writes = statistics.median(per_message(m, WRITES) for m in traced)
        again = statistics.median(per_message(m, READS, "errors") for m in traced)
        total = statistics.median(per_message(m, ["total"]) for m in traced)
        # Under 0.9 would mean the trace missed the server's work, not a better server.
        ok = 0.9 <= reads <= 1.05 and 0.9 <= writes <= 1.05 and again <= 0.05
        p.append(f"| system calls per pipelined message (strace -c) | {total:.2f}: {reads:.2f} "
                 f"reads ({again:.3f} failed), {writes:.2f} writes | one group per message | - | "
                 f"1 read + 1 write, no failed read | {'met' if ok else '**NOT MET**'} |")
    else:
        p.append("| system calls per pipelined message (strace -c) | - | - | - | 1 read + 1 write "
                 "| not measured (workload syscalls, needs strace) |")
    resumed = c.get((ME, "starttls-resume"))
    if resumed is not None and resumed.resumed == 0:
        p.append("\nNote: no smtpd connection of starttls-resume was resumed (the server issued "
                 "no usable ticket), so that row measures full handshakes.")
    p.append("")
    return "\n".join(p)


def main():
    if sys.argv[1:2] == ["--strace"] and len(sys.argv) == 4:
        runs = load(sys.argv[3])
        if len(runs) != 1 or runs[0]["failures"] or not runs[0]["count"]:
            sys.exit(f"{sys.argv[3]}: not one run without failures")
        print(json.dumps(strace_summary(sys.argv[2], runs[0])))
        return
    if sys.argv[1:] == ["--line"]:
        for raw in sys.stdin:
            raw = raw.strip()
            if raw.startswith("{"):
                print(line(json.loads(raw)), flush=True)
        return
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(report(sys.argv[1]))


if __name__ == "__main__":
    main()
