#!/usr/bin/env python3
"""Server and client for bench/make-tls-capture.sh: the same messages with and without STARTTLS.

  tls_smtp.py server PORT [--cert CERT --key KEY --keylog FILE]
      aiosmtpd on 127.0.0.1:PORT whose handler throws every message away. With --cert/--key it
      offers STARTTLS and requires it (require_starttls) and writes the NSS key log of every TLS
      session to --keylog (SSLContext.keylog_filename). Prints "READY" once it listens and runs
      until SIGTERM or SIGINT. No readiness connection of its own, so nothing of it is captured.

  tls_smtp.py client PORT --sessions N --messages M --size BYTES --parallel P [--starttls]
                          [--tls-version 1.2|1.3]
      N SMTP sessions (smtplib), P of them at a time, each EHLO [STARTTLS, EHLO], then M messages
      of exactly BYTES octets (MAIL, RCPT, DATA), then QUIT. The messages are the same on every
      run: message K of session S is made from a seed of S and K, with base64 lines of 76
      characters, so the STARTTLS run and the plaintext run carry the same data. Prints one line:
      "sent SESSIONS sessions, MESSAGES messages, BYTES message bytes, SECONDS s". Exits 1 if any
      session or message fails.
"""
import argparse
import asyncio
import base64
import random
import signal
import smtplib
import ssl
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def message(session: int, index: int, size: int) -> bytes:
    """Message `index` of session `session`, exactly `size` octets, CRLF line ends, no line
    starting with '.' (so dot-stuffing changes nothing)."""
    header = (
        f"From: Bench Sender <sender{session}@client.example.test>\r\n"
        f"To: Bench Sink <sink@server.example.test>\r\n"
        f"Subject: smtptape TLS benchmark, session {session}, message {index}\r\n"
        f"Message-ID: <bench-{session}-{index}@client.example.test>\r\n"
        f"MIME-Version: 1.0\r\n"
        f"Content-Type: application/octet-stream\r\n"
        f"Content-Transfer-Encoding: base64\r\n"
        f"\r\n"
    ).encode()
    body_size = size - len(header)
    if body_size < 2:
        raise SystemExit(f"tls_smtp.py: --size {size} is smaller than the header ({len(header)} octets)")
    rng = random.Random(session * 1_000_003 + index)
    # Full lines of 76 base64 characters (57 random bytes) and CRLF, then one shorter last line
    # (0 to 77 characters and CRLF) that makes the size exact.
    full = (body_size - 2) // 78
    last = body_size - full * 78 - 2
    body = base64.encodebytes(rng.randbytes(full * 57)).replace(b"\n", b"\r\n")
    body += base64.b64encode(rng.randbytes(60))[:last] + b"\r\n"
    assert len(header) + len(body) == size
    return header + body


def run_server(args: argparse.Namespace) -> None:
    from aiosmtpd.smtp import SMTP

    class Discard:
        async def handle_DATA(self, server, session, envelope):
            envelope.content = None
            envelope.original_content = None
            return "250 OK discarded"

    tls_context = None
    if args.cert:
        tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls_context.load_cert_chain(args.cert, args.key)
        if args.keylog:
            tls_context.keylog_filename = args.keylog

    async def main() -> None:
        loop = asyncio.get_running_loop()
        handler = Discard()

        def factory():
            return SMTP(handler, hostname="server.example.test", tls_context=tls_context,
                        require_starttls=tls_context is not None, data_size_limit=None,
                        timeout=600)

        server = await loop.create_server(factory, host="127.0.0.1", port=args.port, backlog=256)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print("READY", flush=True)
        await stop.wait()
        server.close()
        await server.wait_closed()

    asyncio.run(main())


def run_client(args: argparse.Namespace) -> None:
    context = None
    if args.starttls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if args.tls_version == "1.2":
            context.maximum_version = ssl.TLSVersion.TLSv1_2
        elif args.tls_version == "1.3":
            context.minimum_version = ssl.TLSVersion.TLSv1_3

    def one_session(session: int) -> int:
        sent = 0
        with smtplib.SMTP("127.0.0.1", args.port, local_hostname="client.example.test", timeout=600) as smtp:
            smtp.ehlo()
            if context is not None:
                smtp.starttls(context=context)
                smtp.ehlo()
            for index in range(1, args.messages + 1):
                data = message(session, index, args.size)
                refused = smtp.sendmail(f"sender{session}@client.example.test", ["sink@server.example.test"], data)
                if refused:
                    raise RuntimeError(f"session {session}: refused {refused}")
                sent += 1
            smtp.quit()
        return sent

    start = time.monotonic()
    failures = 0
    total = 0
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        futures = [pool.submit(one_session, s) for s in range(1, args.sessions + 1)]
        for s, f in enumerate(futures, 1):
            try:
                total += f.result()
            except Exception as e:  # report every failed session, then fail
                failures += 1
                print(f"tls_smtp.py: session {s} failed: {e!r}", file=sys.stderr)
    took = time.monotonic() - start
    print(f"sent {args.sessions - failures} sessions, {total} messages, {total * args.size} message bytes, {took:.1f} s")
    if failures or total != args.sessions * args.messages:
        sys.exit(1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("server")
    s.add_argument("port", type=int)
    s.add_argument("--cert")
    s.add_argument("--key")
    s.add_argument("--keylog")
    c = sub.add_parser("client")
    c.add_argument("port", type=int)
    c.add_argument("--sessions", type=int, required=True)
    c.add_argument("--messages", type=int, default=1)
    c.add_argument("--size", type=int, required=True)
    c.add_argument("--parallel", type=int, default=4)
    c.add_argument("--starttls", action="store_true")
    c.add_argument("--tls-version", choices=["1.2", "1.3"])
    args = p.parse_args()
    if args.mode == "server":
        if bool(args.cert) != bool(args.key):
            p.error("--cert and --key go together")
        run_server(args)
    else:
        run_client(args)


if __name__ == "__main__":
    main()
