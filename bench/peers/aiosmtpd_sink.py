#!/usr/bin/env python3
"""aiosmtpd sink for bench/run.sh: accepts and discards every message; AUTH PLAIN/LOGIN with
user/pass, optional, offered without TLS. Serves until SIGTERM.

  python3 aiosmtpd_sink.py --port 2525
"""
import argparse
import asyncio
import logging
import signal

from aiosmtpd.smtp import SMTP, AuthResult


class Discard:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


def check(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"user" and auth_data.password == b"pass"
    return AuthResult(success=ok)


async def main(port):
    loop = asyncio.get_running_loop()
    # hostname is given so that aiosmtpd does not look up its FQDN on every connection.
    server = await loop.create_server(
        lambda: SMTP(Discard(), hostname="localhost", authenticator=check,
                     auth_require_tls=False, data_size_limit=64 << 20),
        "127.0.0.1", port)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=2525)
    # 1.4.6 logs a warning on every successful AUTH otherwise.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    asyncio.run(main(ap.parse_args().port))
