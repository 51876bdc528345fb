#!/usr/bin/env bash
# Recording proxy benchmark: Postfix smtp-sink as the server, one client (bench/record_client.py)
# straight to it and through `smtptape record`, side by side in one run.
#   throughput: a 20 MiB message (BENCH_MESSAGE_MIB), seconds from DATA's 354 to the reply after
#               the '.'; target: through the proxy at least 0.8x the direct rate
#   latency:    NOOP round trips one at a time (BENCH_NOOPS), median microseconds; target: the
#               proxy adds under 200 µs
# Each measurement is the median of BENCH_RUNS runs [5]. The proxy records every session (-o into
# bench/work/record) like any recording; its stderr goes to bench/work/record.stderr.
#
# Usage: bench/record.sh [--skip-build]
#   --skip-build   use the existing .build/release/smtptape (or BENCH_SMTPTAPE)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
work=$here/work
mkdir -p "$work"
runs=${BENCH_RUNS:-5}
mib=${BENCH_MESSAGE_MIB:-20}
noops=${BENCH_NOOPS:-2000}
smtptape=${BENCH_SMTPTAPE:-$root/.build/release/smtptape}
if [ "${1:-}" != "--skip-build" ] && [ -z "${BENCH_SMTPTAPE:-}" ]; then
    (cd "$root" && swift build -c release --product smtptape)
fi
[ -x "$smtptape" ] || { echo "record.sh: $smtptape not found; build it with swift build -c release --product smtptape" >&2; exit 1; }
command -v smtp-sink > /dev/null || { echo "record.sh: smtp-sink not found (apt-get install postfix)" >&2; exit 1; }

free_port() { python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
sink_port=$(free_port)
smtp-sink -u nobody "127.0.0.1:$sink_port" 256 &
sink=$!
rm -rf "$work/record"
"$smtptape" record --listen 127.0.0.1:0 --upstream "127.0.0.1:$sink_port" -o "$work/record" > "$work/record.stdout" 2> "$work/record.stderr" &
proxy=$!
trap 'kill $sink $proxy 2> /dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$work/record.stdout" ] && break; sleep 0.1; done
proxy_port=$(head -1 "$work/record.stdout" | sed 's/.*://')

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
measure() {  # port mode amount
    for _ in $(seq "$runs"); do python3 "$here/record_client.py" "$1" "$2" "$3"; done | median
}
direct_s=$(measure "$sink_port" throughput "$mib")
proxy_s=$(measure "$proxy_port" throughput "$mib")
direct_us=$(measure "$sink_port" latency "$noops")
proxy_us=$(measure "$proxy_port" latency "$noops")
python3 - "$mib" "$direct_s" "$proxy_s" "$direct_us" "$proxy_us" <<'PY'
import sys
mib, ds, ps, dl, pl = float(sys.argv[1]), *map(float, sys.argv[2:])
ratio = ds / ps
added = pl - dl
print(f"{mib:.0f} MiB message: direct {ds:.3f} s ({mib / ds:.0f} MiB/s), through the proxy {ps:.3f} s ({mib / ps:.0f} MiB/s): "
      f"{ratio:.2f}x direct (target >= 0.80: {'met' if ratio >= 0.8 else 'missed'})")
print(f"NOOP round trip: direct {dl:.0f} µs, through the proxy {pl:.0f} µs: +{added:.0f} µs (target < 200: {'met' if added < 200 else 'missed'})")
PY
