#!/usr/bin/env python3
"""STARTTLS + AUTH connection load for bench/run.sh (workload "t"), OpenSSL as the client.

Each of N connections, C at a time: greeting, EHLO, STARTTLS, TLS handshake (full, no
resumption), EHLO, AUTH PLAIN, QUIT. The certificate is verified against --cafile. Exit status
is 0 only if every connection completed with the expected replies, so the harness's
`smtpbench.py --external` (which measures the server's CPU and RSS) counts a run as good only
then. Loopback only; every reply has a timeout and the whole run a time limit.

  bench/tls_conns.py 127.0.0.1:2525 -n 2000 -c 20 --cafile cert.pem
  bench/tls_conns.py 127.0.0.1:2525 -n 1 --cafile cert.pem --show    # what was negotiated
"""
import argparse
import asyncio
import base64
import ssl
import sys
import time


class Failed(Exception):
    pass


async def reply(reader, timeout):
    """One SMTP reply: (code, [lines])."""
    lines = []
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line.endswith(b"\r\n") or len(line) < 4:
            raise Failed(f"bad reply line {line!r}")
        lines.append(line[4:-2])
        if line[3:4] == b" ":
            return int(line[:3]), lines


async def expect(reader, code, timeout, what):
    got, lines = await reply(reader, timeout)
    if got != code:
        raise Failed(f"{what}: expected {code}, got {got} {lines[-1]!r}")
    return lines


async def one(args, ctx, auth, show):
    host, port = args.target
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), args.op_timeout)
    try:
        await expect(reader, 220, args.op_timeout, "greeting")
        writer.write(b"EHLO bench.example\r\n")
        caps = await expect(reader, 250, args.op_timeout, "EHLO")
        if b"STARTTLS" not in caps:
            raise Failed("EHLO does not offer STARTTLS")
        writer.write(b"STARTTLS\r\n")
        await expect(reader, 220, args.op_timeout, "STARTTLS")
        await asyncio.wait_for(writer.start_tls(ctx, server_hostname=args.servername),
                               args.op_timeout)
        if show:
            tls = writer.get_extra_info("ssl_object")
            print(f"{tls.version()} {tls.cipher()[0]} (server {host}:{port})")
        writer.write(b"EHLO bench.example\r\n")
        await expect(reader, 250, args.op_timeout, "EHLO after STARTTLS")
        writer.write(auth)
        await expect(reader, 235, args.op_timeout, "AUTH PLAIN")
        writer.write(b"QUIT\r\n")
        await expect(reader, 221, args.op_timeout, "QUIT")
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), args.op_timeout)
        except (OSError, ssl.SSLError, asyncio.TimeoutError):
            pass


async def run(args):
    ctx = ssl.create_default_context(cafile=args.cafile)
    ctx.check_hostname = True
    auth = b"AUTH PLAIN " + base64.b64encode(
        b"\0" + args.user.encode() + b"\0" + args.password.encode()) + b"\r\n"
    todo = iter(range(args.count))
    ok = 0
    errors = {}

    async def worker():
        nonlocal ok
        for i in todo:
            try:
                await one(args, ctx, auth, args.show and i == 0)
                ok += 1
            except (Failed, OSError, ssl.SSLError, asyncio.TimeoutError,
                    asyncio.IncompleteReadError) as e:
                key = f"{type(e).__name__}: {e}"[:200]
                errors[key] = errors.get(key, 0) + 1

    t0 = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(args.concurrency))),
                           args.time_limit)
    wall = time.perf_counter() - t0
    print(f"{ok} ok, {args.count - ok} failed in {wall:.3f} s -> {ok / wall:.1f} conn/s")
    for e, n in errors.items():
        print(f"{n} x {e}", file=sys.stderr)
    return 0 if ok == args.count else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("target", help="127.0.0.1:PORT")
    ap.add_argument("-n", "--count", type=int, default=2000)
    ap.add_argument("-c", "--concurrency", type=int, default=20)
    ap.add_argument("--cafile", required=True, help="PEM certificate the server presents")
    ap.add_argument("--servername", default="localhost")
    ap.add_argument("--user", default="user")
    ap.add_argument("--password", default="pass")
    ap.add_argument("--op-timeout", type=float, default=30)
    ap.add_argument("--time-limit", type=float, default=300)
    ap.add_argument("--show", action="store_true", help="print the first connection's TLS version and cipher")
    args = ap.parse_args()
    host, _, port = args.target.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
        sys.exit("loopback targets only")
    args.target = (host.strip("[]"), int(port))
    try:
        return asyncio.run(run(args))
    except asyncio.TimeoutError:
        print(f"time limit of {args.time_limit} s exceeded", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
