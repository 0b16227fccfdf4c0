#!/usr/bin/env python3
"""Memory figures of issues 7 and 19 against a running server on loopback:

  idle:  N connections opened, greeted and EHLO'd, then held idle; reports the server's RSS
         before and with them (issue 19's target: 10,000 connections in <= 40 MiB RSS).
  large: one message of SIZE MiB streamed through DATA; reports the server's peak RSS growth
         (VmHWM; target: 100 MiB through Sink or Maildir with <= 16 MiB growth).

  bench/idle_and_large.py --pid PID --port PORT idle --count 10000
  bench/idle_and_large.py --pid PID --port PORT large --mib 100
  bench/idle_and_large.py --pid PID --port PORT --json smtpd/idle/1 idle   # one JSON line too

The exit status is 1 if a connection failed or the message was not accepted. Bounded: every
socket operation has a timeout, and the script closes what it opened.
"""
import argparse, asyncio, json, resource, socket, sys, time

def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise SystemExit(f"no {field} for pid {pid}")

async def idle(args):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.count + 1000), hard))
    before = rss_kib(args.pid)
    conns = []
    sem = asyncio.Semaphore(200)
    async def one():
        async with sem:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", args.port), 10)
            await asyncio.wait_for(r.readline(), 10)
            w.write(b"EHLO idle.example\r\n")
            while True:
                line = await asyncio.wait_for(r.readline(), 10)
                if line[3:4] == b" ":
                    break
            conns.append(w)
    t0 = time.time()
    results = await asyncio.gather(*(one() for _ in range(args.count)), return_exceptions=True)
    failed = sum(1 for r in results if isinstance(r, Exception))
    await asyncio.sleep(1)
    held = rss_kib(args.pid)
    print(f"idle: {len(conns)} connections held ({failed} failed) in {time.time()-t0:.1f}s; "
          f"server RSS {before/1024:.1f} MiB before, {held/1024:.1f} MiB with them "
          f"({(held-before)/max(len(conns),1):.2f} KiB per connection)", file=sys.stderr)
    for w in conns:
        w.close()
    emit(args, conns=len(conns), failed=failed, rss_before_kib=before, rss_kib=held)
    return failed == 0

def large(args):
    before = rss_kib(args.pid, "VmHWM")
    s = socket.create_connection(("127.0.0.1", args.port), timeout=30)
    f = s.makefile("rb")
    def reply():
        while True:
            line = f.readline()
            if not line or line[3:4] != b"-":
                return line
    reply()
    for cmd in (b"EHLO big.example", b"MAIL FROM:<a@example.com>", b"RCPT TO:<b@example.com>", b"DATA"):
        s.sendall(cmd + b"\r\n"); r = reply()
    assert r.startswith(b"354"), r
    line = b"x" * 998 + b"\r\n"
    chunk = line * 1024  # ~1 MiB
    t0 = time.time()
    for _ in range(args.mib):
        s.sendall(chunk)
    s.sendall(b".\r\n")
    r = reply()
    dt = time.time() - t0
    peak = rss_kib(args.pid, "VmHWM")
    print(f"large: {args.mib} MiB in {dt:.2f}s ({args.mib/dt:.0f} MiB/s), reply {r.strip().decode()!r}; "
          f"server VmHWM {before/1024:.1f} -> {peak/1024:.1f} MiB (growth {(peak-before)/1024:.1f} MiB)",
          file=sys.stderr)
    s.sendall(b"QUIT\r\n"); reply(); s.close()
    accepted = r.startswith(b"250")
    emit(args, mib=args.mib, accepted=accepted, mib_per_s=round(args.mib / dt, 1),
         hwm_before_kib=before, hwm_kib=peak, growth_kib=peak - before)
    return accepted

def emit(args, **fields):
    if args.json:
        print(json.dumps({"label": args.json, **fields}), flush=True)

p = argparse.ArgumentParser()
p.add_argument("--pid", type=int, required=True)
p.add_argument("--port", type=int, required=True)
p.add_argument("--json", metavar="LABEL", help="also print one JSON line with this label")
sub = p.add_subparsers(dest="what", required=True)
i = sub.add_parser("idle"); i.add_argument("--count", type=int, default=10000)
l = sub.add_parser("large"); l.add_argument("--mib", type=int, default=100)
args = p.parse_args()
ok = asyncio.run(idle(args)) if args.what == "idle" else large(args)
sys.exit(0 if ok else 1)
