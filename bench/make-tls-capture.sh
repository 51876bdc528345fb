#!/usr/bin/env bash
# Build the TLS benchmark captures in bench/work/ if they are missing (names for the default
# BENCH_TLS_PREFIX, bench/work/tls):
#   tls.pcap        SMTP sessions with STARTTLS on 127.0.0.1:$BENCH_TLS_PORT
#   tls.keys        the NSS key log of every TLS session in tls.pcap (written by the server)
#   tls-plain.pcap  the same sessions and messages without STARTTLS, on $BENCH_TLS_PLAIN_PORT
#   tls-capture.txt what was made (the settings, sizes, packets, sessions), read by tls.sh
#
# Real parties over loopback: two aiosmtpd servers (bench/tls_smtp.py server; the handler throws
# messages away), one offering and requiring STARTTLS with a throwaway self-signed certificate
# made with openssl for this run and logging its TLS secrets (SSLContext.keylog_filename), one
# plain. The client (bench/tls_smtp.py client, Python smtplib) runs $BENCH_TLS_SESSIONS
# sessions, $BENCH_TLS_PARALLEL at a time, each sending $BENCH_TLS_MESSAGES messages of
# $BENCH_TLS_MSG_SIZE octets: first with STARTTLS while tcpdump records tls.pcap, then the same
# messages in plaintext while tcpdump records tls-plain.pcap. The messages are made from fixed
# seeds, so both captures carry the same data. tcpdump runs with --immediate-mode (without it,
# packets on lo can wait in the ring buffer and be lost at the stop); if it reports any packet
# dropped, the script fails and keeps no capture. It then checks the session count (client SYNs)
# of both files, the key log (one TLS session per SMTP session) and, with tshark, that the key
# log decrypts the first two sessions (MAIL FROM after STARTTLS, in the first 2000 packets).
#
# The host's lo has a 64 KiB MTU and segmentation offload, so its packets carry up to 64 KiB (about
# 27 KB on average here), some 20 times fewer packets than the same traffic on Ethernet. With
# BENCH_TLS_MTU set (e.g. 1500), everything runs instead in a private network namespace
# (unshare --net) whose own lo has that MTU and TSO, GSO and GRO off (ethtool -K), so the
# capture has Ethernet-sized packets; the host's lo is not touched.
#
# Usage: bench/make-tls-capture.sh [--force]
#   --force   regenerate even if the three files exist
# Environment (defaults in brackets):
#   BENCH_TLS_SESSIONS [50]        SMTP sessions in each capture
#   BENCH_TLS_MESSAGES [1]         messages per session
#   BENCH_TLS_MSG_SIZE [4194304]   octets per message (4 MiB: 50 x 4 MiB makes about 210 MB)
#   BENCH_TLS_PARALLEL [4]         sessions at a time
#   BENCH_TLS_PORT [12587]         STARTTLS server port
#   BENCH_TLS_PLAIN_PORT [12525]   plaintext server port
#   BENCH_TLS_VERSION [any]        1.2 or 1.3 to force the client's TLS version; any lets
#                                  OpenSSL choose (TLS 1.3, TLS_AES_256_GCM_SHA384)
#   BENCH_TCPDUMP_BUFFER_KIB [262144]   tcpdump -B, in KiB
#   BENCH_TLS_MTU [unset]          lo's MTU in a private network namespace (see above); unset:
#                                  the host's lo
#   BENCH_TLS_PREFIX [bench/work/tls]   where the files go: PREFIX.pcap, PREFIX.keys,
#                                  PREFIX-plain.pcap, PREFIX-capture.txt
# Needs root (or CAP_NET_RAW) for tcpdump on lo, python3 with aiosmtpd, openssl, tcpdump,
# tshark and editcap; with BENCH_TLS_MTU also unshare, ip and ethtool (and CAP_SYS_ADMIN).
# Takes about 15 s with the defaults (BENCH_TLS_MTU=1500 too).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$here/work

force=0
for arg in "$@"; do
    case $arg in
        --force) force=1 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "make-tls-capture.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
    esac
done

sessions=${BENCH_TLS_SESSIONS:-50}
messages=${BENCH_TLS_MESSAGES:-1}
msg_size=${BENCH_TLS_MSG_SIZE:-4194304}
parallel=${BENCH_TLS_PARALLEL:-4}
tls_port=${BENCH_TLS_PORT:-12587}
plain_port=${BENCH_TLS_PLAIN_PORT:-12525}
tls_version=${BENCH_TLS_VERSION:-any}
buffer_kib=${BENCH_TCPDUMP_BUFFER_KIB:-262144}
mtu=${BENCH_TLS_MTU:-}
prefix=${BENCH_TLS_PREFIX:-$work/tls}
for v in sessions messages msg_size parallel tls_port plain_port buffer_kib ${mtu:+mtu}; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "make-tls-capture: $v must be a positive integer, not '${!v}'" >&2; exit 2; }
done
case $tls_version in any|1.2|1.3) ;; *) echo "make-tls-capture: BENCH_TLS_VERSION must be any, 1.2 or 1.3" >&2; exit 2 ;; esac

capture=$prefix.pcap
keylog=$prefix.keys
plain=$prefix-plain.pcap
info=$prefix-capture.txt
settings="sessions=$sessions messages=$messages msg_size=$msg_size parallel=$parallel tls_port=$tls_port plain_port=$plain_port tls_version=$tls_version mtu=${mtu:-host}"

if [[ -s $capture && -s $keylog && -s $plain && $force -eq 0 ]]; then
    echo "make-tls-capture: using existing $capture, $keylog and $plain (--force to regenerate)"
    if [[ -s $info ]] && ! grep -qxF "settings: $settings" "$info"; then
        echo "make-tls-capture: note: they were made with other settings ($(grep '^settings:' "$info" | cut -d' ' -f2-)); --force remakes them with these" >&2
    fi
    exit 0
fi

if [[ -n $mtu && -z ${SMTPTAPE_BENCH_IN_NETNS:-} ]]; then
    for tool in unshare ip ethtool; do
        command -v "$tool" >/dev/null || { echo "make-tls-capture: BENCH_TLS_MTU needs $tool (Debian/Ubuntu: apt-get install util-linux iproute2 ethtool)" >&2; exit 1; }
    done
    echo "make-tls-capture: in a private network namespace, lo with MTU $mtu and no segmentation offload"
    exec unshare --net -- env SMTPTAPE_BENCH_IN_NETNS=1 bash -c '
        ip link set lo up && ip link set lo mtu "$1" && ethtool -K lo tso off gso off gro off > /dev/null || exit 1
        shift; exec "$@"' netns "$mtu" "${BASH_SOURCE[0]}" "$@"
fi

for tool in python3 openssl tcpdump tshark editcap; do
    command -v "$tool" >/dev/null || { echo "make-tls-capture: $tool not found (Debian/Ubuntu: apt-get install python3 openssl tcpdump tshark)" >&2; exit 1; }
done
python3 -c 'import aiosmtpd' 2>/dev/null || { echo "make-tls-capture: python3 cannot import aiosmtpd (pip install aiosmtpd)" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$tls_port" "$plain_port"; do
    if port_open "$p"; then
        echo "make-tls-capture: something already listens on 127.0.0.1:$p; stop it or set BENCH_TLS_PORT / BENCH_TLS_PLAIN_PORT" >&2
        exit 1
    fi
done

mkdir -p "$(dirname "$prefix")"
gen=$prefix-gen
rm -rf "$gen"
mkdir -p "$gen"
rm -f "$info"

tls_server_pid=
plain_server_pid=
tcpdump_pid=
# stop PID SIGNAL: send SIGNAL, give the process 5 s, then SIGTERM, then SIGKILL; reap it.
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
    [[ -n $tls_server_pid ]] && { stop "$tls_server_pid" TERM || true; }
    [[ -n $plain_server_pid ]] && { stop "$plain_server_pid" TERM || true; }
    rm -f "$gen"/*.partial
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start=$(date +%s.%N)

echo "make-tls-capture: throwaway self-signed certificate (openssl req -x509)"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$gen/key.pem" -out "$gen/cert.pem" -days 2 \
    -subj /CN=server.example.test 2> "$gen/openssl.log" || { cat "$gen/openssl.log" >&2; exit 1; }

# start_server VAR LOG ARGS...: start tls_smtp.py server, wait for READY, store its pid in VAR.
start_server() {
    local var=$1 log=$2 pid; shift 2
    python3 "$here/tls_smtp.py" server "$@" > "$log" 2> "$log.err" &
    pid=$!
    printf -v "$var" '%s' "$pid"
    for _ in $(seq 100); do
        grep -q READY "$log" && return 0
        kill -0 "$pid" 2>/dev/null || { echo "make-tls-capture: the server exited:" >&2; cat "$log.err" >&2; printf -v "$var" ''; exit 1; }
        sleep 0.1
    done
    echo "make-tls-capture: the server did not start:" >&2; cat "$log.err" >&2; exit 1
}
start_server tls_server_pid "$gen/tls-server.log" "$tls_port" --cert "$gen/cert.pem" --key "$gen/key.pem" --keylog "$gen/tls.keys.partial"
start_server plain_server_pid "$gen/plain-server.log" "$plain_port"

# record PORT OUT CLIENT_ARGS...: tcpdump on lo for PORT into OUT while the client runs;
# fails if tcpdump dropped anything. Leaves tcpdump's log in OUT.tcpdump.log.
record() {
    local port=$1 out=$2 log=$2.tcpdump.log pid dropped; shift 2
    local args=(-i lo -n --immediate-mode -s 0 -B "$buffer_kib" -w "$out.partial")
    [[ $(id -u) -eq 0 ]] && args+=(-Z root)   # else tcpdump becomes the tcpdump user before writing
    tcpdump "${args[@]}" "tcp port $port" 2> "$log" &
    tcpdump_pid=$!
    for _ in $(seq 100); do
        grep -q 'listening on' "$log" && break
        kill -0 "$tcpdump_pid" 2>/dev/null || { cat "$log" >&2; tcpdump_pid=; exit 1; }
        sleep 0.1
    done
    grep -q 'listening on' "$log" || { echo "make-tls-capture: tcpdump did not start" >&2; cat "$log" >&2; exit 1; }
    python3 "$here/tls_smtp.py" client "$port" --sessions "$sessions" --messages "$messages" \
        --size "$msg_size" --parallel "$parallel" "$@" | tee "$out.client.log" | sed 's/^/  client: /'
    [[ ${PIPESTATUS[0]} -eq 0 ]] || { echo "make-tls-capture: the client failed" >&2; exit 1; }
    # Let the last FIN/ACKs in, then stop tcpdump with SIGINT (it writes out and prints its counts).
    sleep 1
    kill -0 "$tcpdump_pid" 2>/dev/null || { echo "make-tls-capture: tcpdump exited early" >&2; cat "$log" >&2; tcpdump_pid=; exit 1; }
    pid=$tcpdump_pid; tcpdump_pid=
    stop "$pid" INT || { echo "make-tls-capture: tcpdump failed" >&2; cat "$log" >&2; exit 1; }
    sed 's/^/  tcpdump: /' "$log"
    grep -qE '^[0-9]+ packets dropped by kernel' "$log" || { echo "make-tls-capture: tcpdump did not report its 'dropped by kernel' count" >&2; exit 1; }
    dropped=$(awk '/packets dropped by (kernel|interface)/ { n += $1 } END { print n + 0 }' "$log")
    if [[ $dropped -ne 0 ]]; then
        echo "make-tls-capture: FAILED: tcpdump dropped $dropped packets, so $out would have gaps." >&2
        echo "make-tls-capture: raise BENCH_TCPDUMP_BUFFER_KIB or lower BENCH_TLS_PARALLEL, and run again." >&2
        exit 1
    fi
}

tls_args=(--starttls)
[[ $tls_version != any ]] && tls_args+=(--tls-version "$tls_version")
echo "make-tls-capture: STARTTLS to 127.0.0.1:$tls_port: $sessions sessions x $messages messages of $msg_size octets, $parallel at a time"
record "$tls_port" "$gen/tls.pcap" "${tls_args[@]}"
echo "make-tls-capture: the same in plaintext to 127.0.0.1:$plain_port"
record "$plain_port" "$gen/tls-plain.pcap"

# Stopping the server closes its key log.
pid=$tls_server_pid; tls_server_pid=
stop "$pid" TERM || true
pid=$plain_server_pid; plain_server_pid=
stop "$pid" TERM || true
end=$(date +%s.%N)

# --- checks ----------------------------------------------------------------------------------
fail() { echo "make-tls-capture: FAILED: $*" >&2; exit 1; }
syns() { tcpdump -n -r "$1" 'tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn' 2>/dev/null | wc -l; }
packets() { tcpdump -n -r "$1" 2>/dev/null | wc -l; }
tls_syns=$(syns "$gen/tls.pcap.partial")
plain_syns=$(syns "$gen/tls-plain.pcap.partial")
[[ $tls_syns -eq $sessions ]] || fail "$tls_syns sessions (client SYNs) in the STARTTLS capture, expected $sessions"
[[ $plain_syns -eq $sessions ]] || fail "$plain_syns sessions (client SYNs) in the plaintext capture, expected $sessions"
# TLS 1.3 logs CLIENT_TRAFFIC_SECRET_0 once per connection, TLS 1.2 CLIENT_RANDOM.
key_sessions=$(awk '$1 == "CLIENT_TRAFFIC_SECRET_0" || $1 == "CLIENT_RANDOM" { print $2 }' "$gen/tls.keys.partial" | sort -u | wc -l)
[[ $key_sessions -eq $sessions ]] || fail "the key log has secrets for $key_sessions TLS sessions, expected $sessions"

echo "make-tls-capture: tshark, first 2000 packets, streams 0 and 1: does the key log decrypt them?"
editcap -r "$gen/tls.pcap.partial" "$gen/head.pcap" 1-2000
for stream in 0 1; do
    tshark -r "$gen/head.pcap" -o "tls.keylog_file:$gen/tls.keys.partial" -d "tcp.port==$tls_port,smtp" \
        -q -z "follow,tls,ascii,$stream" > "$gen/follow-$stream.txt" 2> "$gen/follow-$stream.err" \
        || { cat "$gen/follow-$stream.err" >&2; fail "tshark failed"; }
    grep -qi 'MAIL FROM:<sender' "$gen/follow-$stream.txt" || fail "tshark found no MAIL FROM in the decrypted TLS of stream $stream (see $gen/follow-$stream.txt)"
    grep -m 1 -i 'MAIL FROM:<sender' "$gen/follow-$stream.txt" | sed "s/^/  stream $stream decrypted: /"
done
version=$(tshark -r "$gen/head.pcap" -Y 'tls.handshake.type == 2' -T fields -e tls.handshake.version \
    -e tls.handshake.extensions.supported_version -e tls.handshake.ciphersuite 2>/dev/null | head -1 |
    awk -F'\t' '{ v = ($2 != "") ? $2 : $1; print v " " $3 }')
case ${version%% *} in 0x0304) tls_name="TLS 1.3" ;; 0x0303) tls_name="TLS 1.2" ;; *) tls_name="TLS ${version%% *}" ;; esac
suite=${version#* }

mv -f "$gen/tls.pcap.partial" "$capture"
mv -f "$gen/tls.keys.partial" "$keylog"
mv -f "$gen/tls-plain.pcap.partial" "$plain"
cp "$gen/tls.pcap.tcpdump.log" "$capture.tcpdump.log"
cp "$gen/tls-plain.pcap.tcpdump.log" "$plain.tcpdump.log"

{
    echo "settings: $settings"
    echo "made: $(date -u '+%Y-%m-%d %H:%M UTC') in $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s"
    echo "tls: $tls_name, cipher suite $suite"
    echo "sessions: $sessions"
    echo "messages: $((sessions * messages))"
    echo "message_bytes: $((sessions * messages * msg_size))"
    echo "tls_bytes: $(stat -c %s "$capture")"
    echo "tls_packets: $(packets "$capture")"
    echo "plain_bytes: $(stat -c %s "$plain")"
    echo "plain_packets: $(packets "$plain")"
    echo "keylog_lines: $(grep -vc '^#' "$keylog")"
    echo "client_tls: $(cat "$gen/tls.pcap.client.log")"
    echo "client_plain: $(cat "$gen/tls-plain.pcap.client.log")"
} > "$info"
rm -f "$gen/head.pcap"

echo "make-tls-capture: wrote $capture, $keylog, $plain and $info"
sed 's/^/  /' "$info"
