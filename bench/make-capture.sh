#!/usr/bin/env bash
# Build the large benchmark capture (default bench/work/bench.pcap) if it is missing.
#
# Postfix's smtp-sink listens on 127.0.0.1:$BENCH_PORT, tcpdump records the loopback
# traffic, and smtp-source sends $BENCH_MESSAGES messages of $BENCH_MSG_SIZE bytes over
# $BENCH_PARALLEL parallel sessions, one message per SMTP session (no -d), so the
# capture holds $BENCH_MESSAGES TCP connections.
#
# Usage: bench/make-capture.sh [--force] [capture.pcap]
#   --force   regenerate even if the capture exists
# Environment (defaults in brackets):
#   BENCH_CAPTURE [bench/work/bench.pcap]  BENCH_PORT [10025]
#   BENCH_PARALLEL [20]  BENCH_MESSAGES [20000]  BENCH_MSG_SIZE [8000]
#   BENCH_TCPDUMP_BUFFER_KIB [262144]   (tcpdump -B, in KiB)
# Needs root (or CAP_NET_RAW) for tcpdump on lo.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

force=0
out=
for arg in "$@"; do
    case $arg in
        --force) force=1 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
        -*) echo "make-capture.sh: unknown option $arg" >&2; exit 2 ;;
        *) out=$arg ;;
    esac
done
out=${out:-${BENCH_CAPTURE:-$here/work/bench.pcap}}
port=${BENCH_PORT:-10025}
parallel=${BENCH_PARALLEL:-20}
messages=${BENCH_MESSAGES:-20000}
msg_size=${BENCH_MSG_SIZE:-8000}
buffer_kib=${BENCH_TCPDUMP_BUFFER_KIB:-262144}

if [[ -s $out && $force -eq 0 ]]; then
    echo "make-capture: using existing $out ($(stat -c %s "$out") bytes; --force to regenerate)"
    exit 0
fi

# Postfix installs its test tools in /usr/sbin, which is often not on a user's PATH.
find_tool() {
    local t
    t=$(command -v "$1" 2>/dev/null) || t=
    [[ -z $t ]] && for d in /usr/sbin /usr/local/sbin /usr/lib/postfix /usr/libexec/postfix; do
        [[ -x $d/$1 ]] && { t=$d/$1; break; }
    done
    if [[ -z $t ]]; then
        echo "make-capture: $1 not found (Debian/Ubuntu: apt-get install $2)" >&2
        return 1
    fi
    echo "$t"
}
sink=$(find_tool smtp-sink postfix)
source=$(find_tool smtp-source postfix)
tcpdump=$(find_tool tcpdump tcpdump)

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
if port_open; then
    echo "make-capture: something already listens on 127.0.0.1:$port; stop it or set BENCH_PORT" >&2
    exit 1
fi

mkdir -p "$(dirname "$out")"
partial=$out.partial
tcpdump_err=$out.tcpdump.log
rm -f "$partial"

sink_pid=
tcpdump_pid=
# stop PID SIGNAL: send SIGNAL, give the process 5 s, then SIGTERM, then SIGKILL; reap it.
# (A signal can be lost while a just-started background process still ignores it.)
stop() {
    local pid=$1 sig
    for sig in "$2" TERM KILL; do
        kill -"$sig" "$pid" 2>/dev/null || break
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break 2
            sleep 0.1
        done
    done
    wait "$pid" 2>/dev/null
}
cleanup() {
    local rc=$?
    trap '' INT TERM
    # Only the processes this script started, by pid.
    [[ -n $tcpdump_pid ]] && { stop "$tcpdump_pid" INT || true; }
    [[ -n $sink_pid ]] && { stop "$sink_pid" TERM || true; }
    rm -f "$partial"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start=$(date +%s.%N)

# smtp-sink refuses to run as root without -u.
sink_args=(-h sink.example)
[[ $(id -u) -eq 0 ]] && sink_args+=(-u nobody)
"$sink" "${sink_args[@]}" "127.0.0.1:$port" 256 &
sink_pid=$!
for _ in $(seq 100); do
    port_open && break
    kill -0 "$sink_pid" 2>/dev/null || { echo "make-capture: smtp-sink exited" >&2; sink_pid=; exit 1; }
    sleep 0.1
done
port_open || { echo "make-capture: smtp-sink is not listening on 127.0.0.1:$port" >&2; exit 1; }

# -Z root: as root, tcpdump would otherwise switch to the tcpdump user before creating
# the output file and may not be allowed to write it.
tcpdump_args=(-i lo -n -s 0 -B "$buffer_kib" -w "$partial")
[[ $(id -u) -eq 0 ]] && tcpdump_args+=(-Z root)
"$tcpdump" "${tcpdump_args[@]}" "tcp port $port" 2>"$tcpdump_err" &
tcpdump_pid=$!
for _ in $(seq 100); do
    grep -q 'listening on' "$tcpdump_err" && break
    kill -0 "$tcpdump_pid" 2>/dev/null || { cat "$tcpdump_err" >&2; tcpdump_pid=; exit 1; }
    sleep 0.1
done
grep -q 'listening on' "$tcpdump_err" || { echo "make-capture: tcpdump did not start" >&2; cat "$tcpdump_err" >&2; exit 1; }

echo "make-capture: sending $messages messages of $msg_size bytes, $parallel sessions in parallel, to 127.0.0.1:$port"
"$source" -s "$parallel" -m "$messages" -l "$msg_size" -M client.example "127.0.0.1:$port"

# Let the last FIN/ACKs reach the capture, then stop tcpdump cleanly (SIGINT flushes
# the file and prints the statistics).
sleep 1
if ! kill -0 "$tcpdump_pid" 2>/dev/null; then
    echo "make-capture: tcpdump exited before smtp-source finished" >&2
    cat "$tcpdump_err" >&2
    exit 1
fi
pid=$tcpdump_pid; tcpdump_pid=
stop "$pid" INT || { echo "make-capture: tcpdump failed" >&2; cat "$tcpdump_err" >&2; exit 1; }
pid=$sink_pid; sink_pid=
stop "$pid" TERM || true

end=$(date +%s.%N)

sed 's/^/  tcpdump: /' "$tcpdump_err"
dropped=$(awk '/packets dropped by (kernel|interface)/ { n += $1 } END { print n + 0 }' "$tcpdump_err")
if [[ $dropped -ne 0 ]]; then
    echo "make-capture: WARNING: tcpdump dropped $dropped packets; the capture has gaps." >&2
    echo "make-capture: raise BENCH_TCPDUMP_BUFFER_KIB or lower BENCH_PARALLEL and run with --force." >&2
fi

mv -f "$partial" "$out"

size=$(stat -c %s "$out")
packets=$(grep -oE '^[0-9]+ packets captured' "$tcpdump_err" | cut -d' ' -f1)
syns=$("$tcpdump" -n -r "$out" 'tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn' 2>/dev/null | wc -l)
printf 'make-capture: wrote %s\n' "$out"
awk -v s="$size" 'BEGIN { printf "  size      %d bytes (%.1f MB)\n", s, s / 1e6 }'
printf '  packets   %s\n' "$packets"
printf '  sessions  %s (client SYNs; expected %s)\n' "$syns" "$messages"
awk -v a="$start" -v b="$end" 'BEGIN { printf "  took      %.1f s\n", b - a }'
if [[ $syns -ne $messages ]]; then
    echo "make-capture: WARNING: $syns sessions in the capture, expected $messages" >&2
fi
