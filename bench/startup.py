#!/usr/bin/env python3
"""Time how long `smtptape replay` takes to start serving.

Usage: bench/startup.py RUNS SMTPTAPE SCENARIO

Each run launches `SMTPTAPE replay SCENARIO --listen 127.0.0.1:0 --sessions 1` (standard error
to /dev/null), reads the bound address from the first line of its standard output, connects to it
and reads the 220 greeting, then closes the connection, which ends the one session and the
server. Three times are taken from just before the launch (the fork and exec included):

  address   the address line has arrived
  connect   a TCP connect to it has succeeded
  greeting  the 220 greeting has arrived (the server is not only listening but serving)

Prints one line per run, then `median address/connect/greeting ms` lines that bench/replay.sh
reads. Runs are sequential, so a run never competes with another server.
"""
import socket
import statistics
import subprocess
import sys
import time


def one_run(smtptape, scenario):
    start = time.perf_counter()
    server = subprocess.Popen(
        [smtptape, "replay", scenario, "--listen", "127.0.0.1:0", "--sessions", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        line = server.stdout.readline().decode().strip()
        address = time.perf_counter()
        host, _, port = line.rpartition(":")
        if not port.isdigit():
            sys.exit(f"startup: expected HOST:PORT on standard output, got {line!r}")
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5) as client:
            connect = time.perf_counter()
            greeting = client.recv(512)
            served = time.perf_counter()
        if not greeting.startswith(b"220"):
            sys.exit(f"startup: expected a 220 greeting, got {greeting!r}")
    finally:
        # The session failed (the client left before HELO), so the exit status is 1; unused.
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return [(t - start) * 1000 for t in (address, connect, served)]


def main():
    if len(sys.argv) != 4 or not sys.argv[1].isdigit() or int(sys.argv[1]) < 1:
        sys.exit(__doc__.split("\n\n")[1])
    runs, smtptape, scenario = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    one_run(smtptape, scenario)  # untimed: loads the binary and its libraries into the page cache
    results = []
    for number in range(1, runs + 1):
        times = one_run(smtptape, scenario)
        results.append(times)
        print(f"run {number}: address {times[0]:.1f} ms, connect {times[1]:.1f} ms, greeting {times[2]:.1f} ms")
    for index, name in enumerate(("address", "connect", "greeting")):
        values = [r[index] for r in results]
        print(f"median {name} {statistics.median(values):.1f} ms "
              f"(fastest {min(values):.1f}, slowest {max(values):.1f})")


if __name__ == "__main__":
    main()
