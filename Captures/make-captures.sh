#!/usr/bin/env bash
# Regenerate smtptape's sample captures in Captures/ with real SMTP clients
# and servers talking over loopback.
#
#   bash Captures/make-captures.sh            # all captures
#   bash Captures/make-captures.sh NAME...    # only these
#   bash Captures/make-captures.sh --list     # list capture names
#
# For every capture NAME this writes, next to this script:
#   NAME.pcap        tcpdump -i lo capture of the one SMTP connection
#   NAME.client.log  the client's own log of the dialogue (see README.md
#                    for each client's line format)
# Message bodies come from messages/*.eml (fixed text and headers, so reruns
# differ only in timestamps, ephemeral ports, TCP sequence numbers and, for
# TLS captures, the encrypted bytes).
#
# Needs root (tcpdump on lo, ports 25/465/587).  Installs nothing; it checks
# for: tcpdump, swaks, msmtp, curl, smtp-sink (postfix), ss (iproute2),
# python3 with aiosmtpd and cryptography; tshark (optional) is used to
# check each capture afterwards.
#
# Only 127.0.0.1 / ::1 and ports 25, 465, 587, 2525 are used.
set -euo pipefail

case "${BASH_SOURCE[0]}" in */*) HERE="${BASH_SOURCE[0]%/*}" ;; *) HERE=. ;; esac
HERE="$(cd "$HERE" && pwd)"
MESSAGES="$HERE/messages"
AIOSMTPD_SERVER="$HERE/servers/aiosmtpd_server.py"
SMTPLIB_CLIENT="$HERE/clients/smtplib_client.py"

CLIENT_NAME=client.example.test     # EHLO/HELO name every client uses
SINK_NAME=sink.example.test         # smtp-sink greeting/EHLO name
AIOSMTPD_NAME=aiosmtpd.example.test # aiosmtpd greeting/EHLO name
FROM=alice@example.com

CAPTURES=(
  swaks-sink-plain
  swaks-sink-helo
  swaks-sink-pipelining
  smtplib-aiosmtpd-auth-plain
  smtplib-aiosmtpd-auth-login
  swaks-aiosmtpd-starttls
  swaks-aiosmtpd-smtps
  smtplib-sink-multi
  swaks-aiosmtpd-rejected-rcpt
  curl-sink-plain
  msmtp-aiosmtpd-ipv6
)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'make-captures.sh: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- checks ---

check_tools() {
  local missing=() t
  for t in tcpdump swaks msmtp curl ss python3; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  SMTP_SINK="$(command -v smtp-sink 2>/dev/null || true)"
  [[ -n "$SMTP_SINK" ]] || { [[ -x /usr/sbin/smtp-sink ]] && SMTP_SINK=/usr/sbin/smtp-sink; } \
    || missing+=("smtp-sink (Debian package: postfix)")
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import aiosmtpd' 2>/dev/null || missing+=("python3 module aiosmtpd (pip install aiosmtpd)")
    python3 -c 'import cryptography' 2>/dev/null || missing+=("python3 module cryptography")
  fi
  if ((${#missing[@]})); then
    printf 'make-captures.sh: missing tools (this script installs nothing):\n' >&2
    printf '  - %s\n' "${missing[@]}" >&2
    printf 'On Debian: apt-get install tcpdump swaks msmtp curl postfix iproute2 python3-cryptography;\n' >&2
    printf '           pip install aiosmtpd\n' >&2
    exit 1
  fi
  if command -v tshark >/dev/null 2>&1; then HAVE_TSHARK=1; else
    HAVE_TSHARK=0; log "tshark not found: captures will not be checked"
  fi
  [[ $EUID -eq 0 ]] || die "run as root: tcpdump needs to capture on lo and the servers bind ports 25/465/587"
}

# ------------------------------------------------------- process control ---

WORK=""
SERVER_PID=""
TCPDUMP_PID=""
CURRENT=""   # capture in progress; its half-made files are removed on failure

cleanup() {
  local rc=$?
  if [[ -n "$TCPDUMP_PID" ]]; then kill -INT "$TCPDUMP_PID" 2>/dev/null || true; wait "$TCPDUMP_PID" 2>/dev/null || true; fi
  if [[ -n "$SERVER_PID" ]]; then kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if ((rc != 0)) && [[ -n "$WORK" && -d "$WORK" ]]; then
    local f
    for f in "$WORK"/server.log "$WORK"/tcpdump.err; do
      [[ -s "$f" ]] && { printf -- '--- %s ---\n' "${f##*/}" >&2; tail -n 20 "$f" >&2; }
    done
    if [[ -n "$CURRENT" ]]; then
      f="$HERE/$CURRENT.client.log"
      [[ -s "$f" ]] && { printf -- '--- %s (removed) ---\n' "${f##*/}" >&2; tail -n 20 "$f" >&2; }
      rm -f "$HERE/$CURRENT.pcap" "$HERE/$CURRENT.client.log"
    fi
  fi
  [[ -n "$WORK" ]] && rm -rf "$WORK"
  exit "$rc"
}

# port_listeners PORT: listening sockets on that TCP port (one per line)
port_listeners() { ss -Hltn "sport = :$1" 2>/dev/null || true; }

ensure_port_free() {
  local port=$1
  [[ -z "$(port_listeners "$port")" ]] \
    || die "TCP port $port is already in use on this host (stop whatever listens there):"$'\n'"$(port_listeners "$port")"
}

# wait_for TIMEOUT_SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds
wait_for() {
  local timeout=$1 what=$2; shift 2
  local i
  for ((i = 0; i < timeout * 20; i++)); do
    "$@" && return 0
    sleep 0.05
  done
  die "timed out after ${timeout}s waiting for $what"
}

server_alive() { kill -0 "$SERVER_PID" 2>/dev/null || die "server exited early"; }
sink_listening() { server_alive; [[ -n "$(port_listeners "$1")" ]]; }
aiosmtpd_ready() { server_alive; grep -q '^READY ' "$WORK/server.out"; }
tcpdump_listening() {
  kill -0 "$TCPDUMP_PID" 2>/dev/null || die "tcpdump exited early: $(cat "$WORK/tcpdump.err")"
  grep -q 'listening on' "$WORK/tcpdump.err"
}

# start_sink ADDR PORT [smtp-sink options...]
start_sink() {
  local addr=$1 port=$2; shift 2
  ensure_port_free "$port"
  local user=(); [[ $EUID -eq 0 ]] && user=(-u nobody)   # smtp-sink refuses to run as root
  "$SMTP_SINK" "${user[@]}" -h "$SINK_NAME" "$@" "$addr:$port" 16 >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  wait_for 10 "smtp-sink on $addr:$port" sink_listening "$port"
}

# start_aiosmtpd ADDR PORT [aiosmtpd_server.py options...]
start_aiosmtpd() {
  local addr=$1 port=$2; shift 2
  ensure_port_free "$port"
  : >"$WORK/server.out"
  python3 "$AIOSMTPD_SERVER" --host "$addr" --port "$port" --hostname "$AIOSMTPD_NAME" "$@" \
    >"$WORK/server.out" 2>"$WORK/server.log" &
  SERVER_PID=$!
  wait_for 20 "aiosmtpd on $addr:$port" aiosmtpd_ready
}

stop_server() {
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

# start_capture NAME PORT  (call after the server is up, so no set-up
# connection is captured)
start_capture() {
  local name=$1 port=$2
  rm -f "$HERE/$name.pcap" "$HERE/$name.client.log"
  : >"$WORK/tcpdump.err"
  local drop=(); [[ $EUID -eq 0 ]] && drop=(-Z root)   # else tcpdump drops to user "tcpdump" and cannot write here
  # --immediate-mode: without it libpcap (TPACKET_V3) hands packets over in
  # blocks with a 1 s timeout and the last ones are lost on SIGINT.
  # -B 65536 (KiB): in immediate mode each ring slot is sized for lo's 64 KiB
  # MTU, so the default 2 MiB buffer holds only ~30 packets and drops some
  # when the machine is busy.
  tcpdump -i lo -w "$HERE/$name.pcap" -U -s 0 -B 65536 --immediate-mode "${drop[@]}" "tcp port $port" \
    2>"$WORK/tcpdump.err" &
  TCPDUMP_PID=$!
  wait_for 10 "tcpdump to start listening" tcpdump_listening
}

stop_capture() {
  sleep 0.5   # let the last FIN/ACKs arrive
  kill -INT "$TCPDUMP_PID"
  wait "$TCPDUMP_PID" || die "tcpdump failed: $(cat "$WORK/tcpdump.err")"
  TCPDUMP_PID=""
  grep -q '^0 packets dropped by kernel' "$WORK/tcpdump.err" \
    || die "tcpdump dropped packets, rerun: $(tr '\n' ' ' <"$WORK/tcpdump.err")"
  ! grep -q '^0 packets captured' "$WORK/tcpdump.err" || die "tcpdump captured no packets"
}

# ---------------------------------------------------------------- checks ---

# check_capture NAME LOG_REGEX PCAP_REGEX...: the client log must match
# LOG_REGEX (the final 221 reply as that client prints it); the capture must
# hold exactly one TCP connection whose reassembled stream matches every
# PCAP_REGEX (case-insensitive extended regexes).
check_capture() {
  local name=$1 log_re=$2; shift 2
  local pcap="$HERE/$name.pcap" clog="$HERE/$name.client.log"
  grep -Eq -- "$log_re" "$clog" || die "$name.client.log does not match /$log_re/"
  ((HAVE_TSHARK)) || return 0
  local streams follow re
  streams=$(tshark -r "$pcap" -T fields -e tcp.stream 2>/dev/null | sort -u | wc -l)
  ((streams == 1)) || die "$name.pcap holds $streams TCP connections, expected 1"
  follow=$(tshark -r "$pcap" -q -z follow,tcp,ascii,0 2>/dev/null)
  for re in "$@"; do
    grep -Eqi -- "$re" <<<"$follow" || die "$name.pcap: reassembled stream does not match /$re/"
  done
}

finish() {
  local name=$1
  printf '    %-30s %6s bytes pcap, %5s bytes log\n' "$name" \
    "$(stat -c %s "$HERE/$name.pcap")" "$(stat -c %s "$HERE/$name.client.log")" >&2
}

# ------------------------------------------------------------- captures ---
# One function per capture: capture_<name with - replaced by _>.

swaks_common=(--helo "$CLIENT_NAME" --from "$FROM")

# swaks_data NAME: prints a --data argument for messages/NAME.eml.  swaks
# always appends CRLF "." CRLF to the data, so a file ending in a newline
# would arrive with an extra empty last line; hand it a copy without the
# final newline so the message on the wire is exactly NAME.eml with CRLF.
swaks_data() {
  local copy="$WORK/$1.eml"
  printf '%s' "$(<"$MESSAGES/$1.eml")" >"$copy"
  printf '@%s' "$copy"
}

capture_swaks_sink_plain() {
  local name=swaks-sink-plain port=25
  start_sink 127.0.0.1 "$port"
  start_capture "$name" "$port"
  swaks --server 127.0.0.1 --port "$port" "${swaks_common[@]}" --to bob@example.net \
    --data "$(swaks_data "$name")" >"$HERE/$name.client.log" 2>&1 \
    || die "client failed (exit $?), see $name.client.log"
  stop_capture; stop_server
  check_capture "$name" '^<-  221 ' '^220 sink' '^EHLO client' '^DATA' '^QUIT' '^221 '
}

capture_swaks_sink_helo() {
  local name=swaks-sink-helo port=25
  start_sink 127.0.0.1 "$port"
  start_capture "$name" "$port"
  swaks --server 127.0.0.1 --port "$port" --protocol SMTP "${swaks_common[@]}" --to bob@example.net \
    --data "$(swaks_data "$name")" >"$HERE/$name.client.log" 2>&1 \
    || die "client failed (exit $?), see $name.client.log"
  stop_capture; stop_server
  check_capture "$name" '^<-  221 ' '^220 sink' '^HELO client' '^QUIT' '^221 '
}

capture_swaks_sink_pipelining() {
  local name=swaks-sink-pipelining port=25
  start_sink 127.0.0.1 "$port"
  start_capture "$name" "$port"
  swaks --server 127.0.0.1 --port "$port" --pipeline "${swaks_common[@]}" \
    --to bob@example.net,carol@example.org \
    --data "$(swaks_data "$name")" >"$HERE/$name.client.log" 2>&1 \
    || die "client failed (exit $?), see $name.client.log"
  stop_capture; stop_server
  check_capture "$name" '^<-  221 ' '^250-PIPELINING' '^RCPT TO:<carol@example.org>' '^QUIT' '^221 '
}

capture_smtplib_aiosmtpd_auth_plain() {
  local name=smtplib-aiosmtpd-auth-plain port=587
  start_aiosmtpd 127.0.0.1 "$port" --auth --allow-plaintext-auth
  start_capture "$name" "$port"
  python3 "$SMTPLIB_CLIENT" auth-plain --host 127.0.0.1 --port "$port" --messages "$MESSAGES" \
    >"$HERE/$name.client.log" 2>&1 \
    || die "client failed (exit $?), see $name.client.log"
  stop_capture; stop_server
  check_capture "$name" "^reply: b'221 " '^220 aiosmtpd' '^AUTH PLAIN ' '^235 ' '^quit' '^221 '
}

capture_smtplib_aiosmtpd_auth_login() {
  local name=smtplib-aiosmtpd-auth-login port=587
  start_aiosmtpd 127.0.0.1 "$port" --auth --allow-plaintext-auth
  start_capture "$name" "$port"
  python3 "$SMTPLIB_CLIENT" auth-login --host 127.0.0.1 --port "$port" --messages "$MESSAGES" \
    >"$HERE/$name.client.log" 2>&1 \
    || die "client failed (exit $?), see $name.client.log"
  stop_capture; stop_server
  check_capture "$name" "^reply: b'221 " '^AUTH LOGIN' '^334 ' '^535 ' '^235 ' '^quit' '^221 '
}

capture_swaks_aiosmtpd_starttls() {
  local name=swaks-aiosmtpd-starttls port=587
  start_aiosmtpd 127.0.0.1 "$port" --starttls --auth
  start_capture "$name" "$port"
  swaks --server 127.0.0.1 --port "$port" --tls "${swaks_common[@]}" --to bob@example.net \
    --auth LOGIN --auth-user alice --auth-password wonderland \
    --data "$(swaks_data "$name")" >"$HERE/$name.client.log" 2>&1 \
    || die "client failed (exit $?), see $name.client.log"
  stop_capture; stop_server
  # only the part before the TLS handshake is readable in the capture
  check_capture "$name" '^<~  221 ' '^220 aiosmtpd' '^250-STARTTLS' '^STARTTLS' '^220 Ready to start TLS'
}

capture_swaks_aiosmtpd_smtps() {
  local name=swaks-aiosmtpd-smtps port=465
  start_aiosmtpd 127.0.0.1 "$port" --smtps --auth
  start_capture "$name" "$port"
  swaks --server 127.0.0.1 --port "$port" --tls-on-connect "${swaks_common[@]}" --to bob@example.net \
    --auth PLAIN --auth-user alice --auth-password wonderland \
    --data "$(swaks_data "$name")" >"$HERE/$name.client.log" 2>&1 \
    || die "client failed (exit $?), see $name.client.log"
  stop_capture; stop_server
  check_capture "$name" '^<~  221 '
  if ((HAVE_TSHARK)) && tshark -r "$HERE/$name.pcap" -q -z follow,tcp,ascii,0 2>/dev/null | grep -q 'EHLO'; then
    die "$name.pcap: found clear-text EHLO in an implicit-TLS capture"
  fi
}

capture_smtplib_sink_multi() {
  local name=smtplib-sink-multi port=2525
  start_sink 127.0.0.1 "$port"
  start_capture "$name" "$port"
  python3 "$SMTPLIB_CLIENT" multi --host 127.0.0.1 --port "$port" --messages "$MESSAGES" \
    >"$HERE/$name.client.log" 2>&1 \
    || die "client failed (exit $?), see $name.client.log"
  stop_capture; stop_server
  check_capture "$name" "^reply: b'221 " '^NOOP' '^HELP' '^VRFY' '^RSET' 'BODY=8BITMIME' \
    '^\.\.a line starting with one dot' '^RCPT TO:<eve@example.org>' '^quit' '^221 '
}

capture_swaks_aiosmtpd_rejected_rcpt() {
  local name=swaks-aiosmtpd-rejected-rcpt port=25
  start_aiosmtpd 127.0.0.1 "$port"
  start_capture "$name" "$port"
  swaks --server 127.0.0.1 --port "$port" "${swaks_common[@]}" --to bob@example.net,nobody@example.net \
    --data "$(swaks_data "$name")" >"$HERE/$name.client.log" 2>&1 \
    || die "client failed (exit $?), see $name.client.log"
  stop_capture; stop_server
  check_capture "$name" '^<\*\* 550 5\.1\.1' '^550 5\.1\.1 <nobody@example.net>: Recipient address rejected' \
    '^250 2\.0\.0 Ok: queued' '^QUIT' '^221 '
}

capture_curl_sink_plain() {
  local name=curl-sink-plain port=2525
  start_sink 127.0.0.1 "$port"
  start_capture "$name" "$port"
  # The URL path sets the EHLO name; --crlf turns the file's LF into CRLF.
  curl -sS -v --crlf "smtp://127.0.0.1:$port/$CLIENT_NAME" \
    --mail-from "$FROM" --mail-rcpt bob@example.net \
    -T "$MESSAGES/$name.eml" >"$HERE/$name.client.log" 2>&1 \
    || die "client failed (exit $?), see $name.client.log"
  stop_capture; stop_server
  check_capture "$name" '^< 250 2\.0\.0 Ok' '^220 sink' '^EHLO client' '^QUIT' '^221 '
}

capture_msmtp_aiosmtpd_ipv6() {
  local name=msmtp-aiosmtpd-ipv6 port=25
  start_aiosmtpd ::1 "$port"
  start_capture "$name" "$port"
  # -C /dev/null: ignore any ~/.msmtprc; everything is on the command line.
  msmtp -C /dev/null --debug --host=::1 --port="$port" --domain="$CLIENT_NAME" \
    --auth=off --tls=off --from="$FROM" bob@example.net \
    <"$MESSAGES/$name.eml" >"$HERE/$name.client.log" 2>&1 \
    || die "client failed (exit $?), see $name.client.log"
  stop_capture; stop_server
  check_capture "$name" '^<-- 221 ' '^220 aiosmtpd' '^EHLO client' '^QUIT' '^221 '
  if ((HAVE_TSHARK)); then
    tshark -r "$HERE/$name.pcap" -T fields -e ipv6.src 2>/dev/null | grep -qx '::1' \
      || die "$name.pcap is not IPv6"
  fi
}

# ----------------------------------------------------------------- main ---

main() {
  if [[ ${1:-} == --list ]]; then printf '%s\n' "${CAPTURES[@]}"; return; fi
  if [[ ${1:-} == -h || ${1:-} == --help ]]; then sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; return; fi
  local selected=("$@") name
  ((${#selected[@]})) || selected=("${CAPTURES[@]}")
  for name in "${selected[@]}"; do
    declare -F "capture_${name//-/_}" >/dev/null || die "unknown capture '$name' (see --list)"
  done
  check_tools
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/make-captures.XXXXXX")"
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  for name in "${selected[@]}"; do
    log "$name"
    CURRENT=$name
    "capture_${name//-/_}"
    CURRENT=""
    finish "$name"
  done
  log "done: ${#selected[@]} capture(s) in $HERE"
}

main "$@"
