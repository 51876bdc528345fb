#!/usr/bin/env python3
"""One client for bench/record.sh: through the proxy or straight to the server, side by side.

  record_client.py PORT throughput MIB   one message of MIB MiB: prints the seconds from DATA's
                                          354 to the reply after the '.'
  record_client.py PORT latency N        N NOOPs, one at a time: prints the median round trip
                                          in microseconds
"""
import socket
import statistics
import sys
import time

port, mode, amount = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port), timeout=60)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
f = s.makefile("rb")


def reply():
    while True:
        line = f.readline()
        if not line or line[3:4] != b"-":
            return line


def command(line):
    s.sendall(line + b"\r\n")
    return reply()


reply()
command(b"EHLO bench.example.test")
if mode == "throughput":
    command(b"MAIL FROM:<bench@example.test>")
    command(b"RCPT TO:<sink@example.test>")
    assert command(b"DATA").startswith(b"354")
    line = b"x" * 76 + b"\r\n"
    block = line * (65536 // len(line))
    total = amount << 20
    start = time.perf_counter()
    sent = 0
    while sent < total:
        s.sendall(block)
        sent += len(block)
    s.sendall(b".\r\n")
    answer = reply()
    elapsed = time.perf_counter() - start
    assert answer.startswith(b"250"), answer
    print(f"{elapsed:.4f}")
else:
    samples = []
    for _ in range(amount):
        start = time.perf_counter_ns()
        command(b"NOOP")
        samples.append((time.perf_counter_ns() - start) / 1000)
    print(f"{statistics.median(samples):.1f}")
command(b"QUIT")
