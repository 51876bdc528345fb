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
#   NAME.keys        (the *-tls12-* and *-tls13-* captures) the NSS key log
#                    (SSLKEYLOGFILE format) of that one TLS session, written
#                    by the client or, where README.md says so, the server
#   NAME-dsb.pcapng  (smtplib-aiosmtpd-tls13-chacha-starttls-auth only) the
#                    same capture with its key log embedded as a pcapng
#                    Decryption Secrets Block (editcap --inject-secrets)
# Message bodies come from messages/*.eml (fixed text and headers, so reruns
# differ only in timestamps, ephemeral ports, TCP sequence numbers and, for
# TLS captures, the encrypted bytes and the key logs).  The TLS captures use
# a throw-away self-signed RSA certificate made with openssl req in a
# temporary directory that is deleted at the end; no private key is kept.
# OpenSSL config files for the clients (and one for the server) given with
# OPENSSL_CONF are in tls/.
#
# Needs root (tcpdump on lo, ports 25/465/587).  Installs nothing; it checks
# for: tcpdump, swaks, msmtp, curl, openssl, smtp-sink (postfix), ss
# (iproute2), python3 with aiosmtpd and cryptography, and editcap
# (wireshark-common) for the -dsb.pcapng; tshark (optional) is used to check
# each capture afterwards, including decrypting the TLS ones with their key
# logs.
#
# Only 127.0.0.1 / ::1 and ports 25, 465, 587, 2525 are used.
set -euo pipefail

case "${BASH_SOURCE[0]}" in */*) HERE="${BASH_SOURCE[0]%/*}" ;; *) HERE=. ;; esac
HERE="$(cd "$HERE" && pwd)"
MESSAGES="$HERE/messages"
AIOSMTPD_SERVER="$HERE/servers/aiosmtpd_server.py"
SMTPLIB_CLIENT="$HERE/clients/smtplib_client.py"
TLS_CONF="$HERE/tls"

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
  curl-aiosmtpd-tls13-aes128-starttls
  smtplib-aiosmtpd-tls13-aes256-smtps
  smtplib-aiosmtpd-tls13-chacha-starttls-auth
  openssl-aiosmtpd-tls13-keyupdate-starttls
  swaks-aiosmtpd-tls12-aes128gcm-starttls
  curl-aiosmtpd-tls12-aes256gcm-smtps
  curl-aiosmtpd-tls12-chacha-starttls
  curl-aiosmtpd-tls12-aes128sha-etm-starttls
  smtplib-aiosmtpd-tls12-aes256sha384-mte-starttls
  curl-aiosmtpd-tls12-aes128sha256-mte-smtps
  curl-aiosmtpd-tls13-hrr-starttls
)
DSB_CAPTURE=smtplib-aiosmtpd-tls13-chacha-starttls-auth   # also writes NAME-dsb.pcapng

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'make-captures.sh: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- checks ---

check_tools() {   # check_tools SELECTED_NAME...
  local missing=() t
  for t in tcpdump swaks msmtp curl openssl ss python3; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  [[ " $* " != *" $DSB_CAPTURE "* ]] || command -v editcap >/dev/null 2>&1 \
    || missing+=("editcap (Debian package: wireshark-common), for $DSB_CAPTURE-dsb.pcapng")
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
    printf 'On Debian: apt-get install tcpdump swaks msmtp curl openssl postfix iproute2 python3-cryptography wireshark-common;\n' >&2
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
CLIENT_PID=""  # only for clients run in the background (openssl s_client)
CURRENT=""   # capture in progress; its half-made files are removed on failure

cleanup() {
  local rc=$?
  if [[ -n "$CLIENT_PID" ]]; then kill -TERM "$CLIENT_PID" 2>/dev/null || true; wait "$CLIENT_PID" 2>/dev/null || true; fi
  if [[ -n "$TCPDUMP_PID" ]]; then kill -INT "$TCPDUMP_PID" 2>/dev/null || true; wait "$TCPDUMP_PID" 2>/dev/null || true; fi
  if [[ -n "$SERVER_PID" ]]; then kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if ((rc != 0)) && [[ -n "$WORK" && -d "$WORK" ]]; then
    local f
    for f in "$WORK"/server.log "$WORK"/tcpdump.err "$WORK"/curl.log; do
      [[ -s "$f" ]] && { printf -- '--- %s ---\n' "${f##*/}" >&2; tail -n 20 "$f" >&2; }
    done
    if [[ -n "$CURRENT" ]]; then
      f="$HERE/$CURRENT.client.log"
      [[ -s "$f" ]] && { printf -- '--- %s (removed) ---\n' "${f##*/}" >&2; tail -n 20 "$f" >&2; }
      rm -f "$HERE/$CURRENT.pcap" "$HERE/$CURRENT.client.log" "$HERE/$CURRENT.keys" "$HERE/$CURRENT-dsb.pcapng"
    fi
  fi
  [[ -n "$WORK" ]] && rm -rf "$WORK"
  exit "$rc"
}

# port_listeners PORT: listening sockets on that TCP port (one per line)
port_listeners() { ss -Hltn "sport = :$1" 2>/dev/null || true; }

# ensure_port_free PORT: wait up to 60 s for PORT to be free (someone else
# may be using it for a moment), then give up.
ensure_port_free() {
  local port=$1 i
  for ((i = 0; i < 600; i++)); do
    [[ -z "$(port_listeners "$port")" ]] && return 0
    ((i)) || log "TCP port $port is in use; waiting up to 60 s for it to be free"
    sleep 0.1
  done
  die "TCP port $port is still in use on this host (stop whatever listens there):"$'\n'"$(port_listeners "$port")"
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
  rm -f "$HERE/$name.pcap" "$HERE/$name.client.log" "$HERE/$name.keys" "$HERE/$name-dsb.pcapng"
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
  local name=$1 extra=""
  [[ -f "$HERE/$name.keys" ]] && extra+=", $(stat -c %s "$HERE/$name.keys") bytes keys"
  [[ -f "$HERE/$name-dsb.pcapng" ]] && extra+=", $(stat -c %s "$HERE/$name-dsb.pcapng") bytes -dsb.pcapng"
  printf '    %-30s %6s bytes pcap, %5s bytes log%s\n' "$name" \
    "$(stat -c %s "$HERE/$name.pcap")" "$(stat -c %s "$HERE/$name.client.log")" "$extra" >&2
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

# ------------------------------------------------------------------ TLS ---
# Every TLS capture comes with NAME.keys, the NSS key log (SSLKEYLOGFILE
# format) written during the session by one of its two parties: curl
# (SSLKEYLOGFILE), Python smtplib (SSLContext.keylog_filename), openssl
# s_client (-keylogfile) or, for swaks, the aiosmtpd server (--keylog).  It
# is written to $WORK first and moved next to the pcap once the server has
# stopped.  The server uses a throw-away RSA certificate (the ECDHE-RSA TLS
# 1.2 suites need one); the suite and version are chosen by the client.

# make_tls_cert: a self-signed RSA certificate for aiosmtpd, made once per
# run in $WORK (deleted at exit); sets aiosmtpd_tls to the server options.
aiosmtpd_tls=()
make_tls_cert() {
  ((${#aiosmtpd_tls[@]})) && return 0
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=$AIOSMTPD_NAME" \
    -addext "subjectAltName=DNS:$AIOSMTPD_NAME,DNS:localhost,IP:127.0.0.1,IP:::1" \
    -keyout "$WORK/tls-key.pem" -out "$WORK/tls-cert.pem" >"$WORK/openssl-req.log" 2>&1 \
    || die "openssl req failed: $(cat "$WORK/openssl-req.log")"
  aiosmtpd_tls=(--tls-cert "$WORK/tls-cert.pem" --tls-key "$WORK/tls-key.pem")
}

# start_aiosmtpd_tls PORT starttls|smtps [aiosmtpd_server.py options...]
start_aiosmtpd_tls() {
  local port=$1 mode=$2; shift 2
  make_tls_cert
  start_aiosmtpd 127.0.0.1 "$port" "--$mode" "${aiosmtpd_tls[@]}" "$@"
}

# save_keys NAME: move the key log written to $WORK/NAME.keys next to the
# capture (after the server has stopped, so a server key log is complete).
save_keys() {
  local name=$1
  [[ -s "$WORK/$name.keys" ]] || die "no key log was written for $name"
  mv "$WORK/$name.keys" "$HERE/$name.keys"
  chmod 644 "$HERE/$name.keys"
}

# curl_smtp NAME smtp|smtps PORT [curl options...]: one message from
# messages/NAME.eml, key log to $WORK/NAME.keys.  curl -v's stderr is kept
# in $WORK/curl.log; NAME.client.log is that log reduced to the connection
# info and the SMTP lines (the TLS handshake trace, the server certificate
# and the "[N bytes data]" lines are dropped).
curl_smtp() {
  local name=$1 scheme=$2 port=$3; shift 3
  local rc=0
  # The URL path sets the EHLO name; --crlf turns the file's LF into CRLF;
  # -k: the certificate is self-signed.
  SSLKEYLOGFILE="$WORK/$name.keys" curl -sS -v -k --crlf "$@" "$scheme://127.0.0.1:$port/$CLIENT_NAME" \
    --mail-from "$FROM" --mail-rcpt bob@example.net \
    -T "$MESSAGES/$name.eml" >"$WORK/curl.log" 2>&1 || rc=$?
  grep -E '^(\*   Trying |\* Connected to |\* SSL connection using |\* Connection #|[<>] )' \
    "$WORK/curl.log" >"$HERE/$name.client.log" || true
  ((rc == 0)) || die "client failed (exit $rc), see $name.client.log"
}

# smtplib_tls NAME SCENARIO starttls|smtps PORT [smtplib_client.py options...]
smtplib_tls() {
  local name=$1 scenario=$2 mode=$3 port=$4; shift 4
  python3 "$SMTPLIB_CLIENT" "$scenario" --host 127.0.0.1 --port "$port" --messages "$MESSAGES" \
    --message "$name" --tls "$mode" --keylog "$WORK/$name.keys" "$@" \
    >"$HERE/$name.client.log" 2>&1 \
    || die "client failed (exit $?), see $name.client.log"
}

# tls_dialogue PCAP [KEYLOG]: the SMTP dialogue as tshark decodes it, one
# token per command ("C:EHLO") or reply line ("S:250"), with a "|" where
# the TLS application data starts.  Commands are cut to 4 characters by
# tshark (C:STAR is STARTTLS).
tls_dialogue() {
  local pcap=$1 keys=${2:-} sport
  local opt=(); [[ -n "$keys" ]] && opt=(-o "tls.keylog_file:$keys")
  sport=$(tshark -r "$pcap" -Y 'tcp.flags.syn==1 && tcp.flags.ack==0' -T fields -e tcp.dstport 2>/dev/null | head -n 1)
  tshark -r "$pcap" "${opt[@]}" -Y smtp -T fields -e tcp.srcport -e tls.record.content_type \
      -e smtp.req.command -e smtp.response.code 2>/dev/null \
    | awk -F '\t' -v sport="$sport" '
        $2 ~ /(^|,)23(,|$)/ && !tls { out = out " |"; tls = 1 }
        {
          n = split($($1 == sport ? 4 : 3), v, ",")
          for (i = 1; i <= n; i++) if (v[i] != "") out = out " " ($1 == sport ? "S:" : "C:") v[i]
        }
        END { print substr(out, 2) }'
}

# check_keylog FILE: NSS key log lines ("LABEL <client random> <secret>",
# hex) and "#" comments only, and at least one secret.
check_keylog() {
  local f=$1
  [[ -s "$f" ]] || die "${f##*/} is missing or empty"
  ! grep -Evq '^(#.*|[A-Z][A-Z0-9_]* [0-9a-f]{64} [0-9a-f]{32,})$' "$f" \
    || die "${f##*/} has a line that is not in NSS key log format: $(grep -Ev '^(#.*|[A-Z][A-Z0-9_]* [0-9a-f]{64} [0-9a-f]{32,})$' "$f" | head -n 1)"
}

# check_tls_capture [--hrr] NAME PORT 1.2|1.3 SUITE ETM DIALOGUE_RE FOLLOW_RE...
#   NAME.keys must be an NSS key log.  With tshark: the pcap must hold one
#   TCP connection and one TLS handshake (without --hrr: one ClientHello and
#   no HelloRetryRequest; with --hrr: ClientHello, HelloRetryRequest (a
#   ServerHello whose random is HRR_RANDOM), a second ClientHello with the
#   same random, then the real ServerHello), whose ServerHello selects TLS
#   version 1.2/1.3 and cipher suite SUITE (hex, e.g. 0x1301), with the
#   encrypt_then_mac extension (22) in the ServerHello if ETM is "etm", not
#   if it is "mte" ("-": not checked; OpenSSL only echoes 22 for CBC suites,
#   and TLS 1.3 has no such extension); the key log must be for that
#   handshake's client random only; the SMTP dialogue decrypted with the
#   key log (see tls_dialogue) must match DIALOGUE_RE, and the decrypted
#   stream (tshark -z follow,tls,ascii,0) every FOLLOW_RE (extended
#   regexes, case-insensitive).
check_tls_capture() {
  local hrr=0; [[ $1 == --hrr ]] && { hrr=1; shift; }
  local name=$1 port=$2 version=$3 suite=$4 etm=$5 dialogue_re=$6; shift 6
  local pcap="$HERE/$name.pcap" keys="$HERE/$name.keys"
  check_keylog "$keys"
  ((HAVE_TSHARK)) || return 0
  local streams hellos hello legacy supported got_suite exts got_version randoms crandom dialogue follow re
  streams=$(tshark -r "$pcap" -T fields -e tcp.stream 2>/dev/null | sort -u | wc -l)
  ((streams == 1)) || die "$name.pcap holds $streams TCP connections, expected 1"
  # The handshake's ClientHellos (C) and ServerHellos (S, or H for a
  # HelloRetryRequest), in order.
  hellos=$(tshark -r "$pcap" -Y 'tls.handshake.type==1 || tls.handshake.type==2' -T fields \
      -e tls.handshake.type -e tls.handshake.random 2>/dev/null \
    | awk -F '\t' -v hrr="$HRR_RANDOM" '{ n = split($1, t, ","); split($2, r, ","); j = 0
        for (i = 1; i <= n; i++) if (t[i] == 1 || t[i] == 2) { x = r[++j]; gsub(":", "", x)
          printf "%s", t[i] == 1 ? "C" : (x == hrr ? "H" : "S") } }')
  if ((hrr)); then
    [[ $hellos == CHCS ]] \
      || die "$name.pcap: expected ClientHello, HelloRetryRequest, ClientHello, ServerHello, got $hellos"
  else
    [[ $hellos == CS ]] || die "$name.pcap: expected one ClientHello and one ServerHello, got $hellos"
  fi
  hello=$(tshark -r "$pcap" -Y "tls.handshake.type==2 && !(tls.handshake.random==$(sed 's/../&:/g; s/:$//' <<<"$HRR_RANDOM"))" \
    -T fields -E 'separator=;' -e tcp.srcport \
    -e tls.handshake.version -e tls.handshake.extensions.supported_version \
    -e tls.handshake.ciphersuite -e tls.handshake.extension.type 2>/dev/null)
  [[ $(wc -l <<<"$hello") == 1 && -n "$hello" ]] || die "$name.pcap: expected one ServerHello, got: $hello"
  IFS=';' read -r _ legacy supported got_suite exts <<<"$hello"
  got_version=${supported:-$legacy}
  case $version in 1.2) [[ $got_version == 0x0303 ]] ;; 1.3) [[ $got_version == 0x0304 ]] ;; *) false ;; esac \
    || die "$name.pcap: ServerHello version $got_version, expected TLS $version"
  [[ $got_suite == "$suite" ]] || die "$name.pcap: ServerHello suite $got_suite, expected $suite"
  case $etm in
    etm) [[ ",$exts," == *,22,* ]] || die "$name.pcap: no encrypt_then_mac (22) in the ServerHello ($exts)" ;;
    mte) [[ ",$exts," != *,22,* ]] || die "$name.pcap: encrypt_then_mac (22) in the ServerHello ($exts)" ;;
  esac
  # (after a HelloRetryRequest the second ClientHello has the same random)
  crandom=$(tshark -r "$pcap" -Y 'tls.handshake.type==1' -T fields -e tls.handshake.random 2>/dev/null \
    | tr -d ':' | sort -u)
  [[ $(wc -l <<<"$crandom") == 1 ]] || die "$name.pcap: the ClientHellos have different randoms: $crandom"
  randoms=$(awk '!/^#/ { print $2 }' "$keys" | sort -u)
  [[ $randoms == "$crandom" ]] || die "$name.keys is not (only) for the ClientHello random $crandom"
  dialogue=$(tls_dialogue "$pcap" "$keys")
  grep -Eqi -- "$dialogue_re" <<<"$dialogue" \
    || die "$name.pcap: decrypted dialogue '$dialogue' does not match /$dialogue_re/"
  follow=$(tshark -r "$pcap" -o "tls.keylog_file:$keys" -q -z follow,tls,ascii,0 2>/dev/null)
  for re in "$@"; do
    grep -Eqi -- "$re" <<<"$follow" || die "$name.pcap: decrypted stream does not match /$re/"
  done
  printf '    %-30s TLS %s suite %s%s%s, decrypted: %s\n' "$name" "$version" "$got_suite" \
    "$([[ $etm != - ]] && { [[ ",$exts," == *,22,* ]] && echo ' EtM' || echo ' no-EtM'; })" \
    "$( ((hrr)) && echo ' after HRR')" "$dialogue" >&2
}

# The random of a TLS 1.3 HelloRetryRequest (RFC 8446, 4.1.3: SHA-256 of
# "HelloRetryRequest"); it is a ServerHello on the wire.
HRR_RANDOM=cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c

# Expected decrypted dialogues (tls_dialogue).  STARTTLS: EHLO and STARTTLS
# in clear text, then everything inside TLS; SMTPS: nothing in clear text.
# Only the reply lines tshark reports are listed (aiosmtpd's EHLO reply has
# several 250 lines).
RE_STARTTLS='^S:220 C:EHLO( S:250)+ C:STAR S:220 \| '
RE_SMTPS='^\| S:220 '
RE_MAIL='C:EHLO( S:250)+ C:MAIL S:250 C:RCPT S:250 C:DATA S:354 S:250 C:QUIT S:221$'
RE_AUTH_MAIL='C:EHLO( S:250)+ C:AUTH S:235 C:MAIL S:250 C:RCPT S:250 C:DATA S:354 S:250 C:QUIT S:221$'
# follow,tls,ascii: the message, both directions' last lines
follow_res() { printf '%s\n' "^Subject: $1" '^Hello Bob,' '^quit' '^221 '; }

capture_curl_aiosmtpd_tls13_aes128_starttls() {
  local name=curl-aiosmtpd-tls13-aes128-starttls port=587
  start_aiosmtpd_tls "$port" starttls
  start_capture "$name" "$port"
  curl_smtp "$name" smtp "$port" --ssl-reqd --tlsv1.3 --tls13-ciphers TLS_AES_128_GCM_SHA256
  stop_capture; stop_server; save_keys "$name"
  check_capture "$name" '^< 250 2\.0\.0 Ok' '^220 aiosmtpd' '^STARTTLS' '^220 Ready to start TLS'
  local res; mapfile -t res < <(follow_res "$name")
  check_tls_capture "$name" "$port" 1.3 0x1301 - "$RE_STARTTLS$RE_MAIL" "${res[@]}"
}

capture_smtplib_aiosmtpd_tls13_aes256_smtps() {
  local name=smtplib-aiosmtpd-tls13-aes256-smtps port=465
  start_aiosmtpd_tls "$port" smtps
  start_capture "$name" "$port"
  OPENSSL_CONF="$TLS_CONF/tls13-aes256.cnf" smtplib_tls "$name" send smtps "$port"
  stop_capture; stop_server; save_keys "$name"
  check_capture "$name" "^reply: b'221 "
  local res; mapfile -t res < <(follow_res "$name")
  check_tls_capture "$name" "$port" 1.3 0x1302 - "$RE_SMTPS$RE_MAIL" "${res[@]}"
}

capture_smtplib_aiosmtpd_tls13_chacha_starttls_auth() {
  local name=smtplib-aiosmtpd-tls13-chacha-starttls-auth port=587
  start_aiosmtpd_tls "$port" starttls --auth
  start_capture "$name" "$port"
  OPENSSL_CONF="$TLS_CONF/tls13-chacha.cnf" smtplib_tls "$name" auth-send starttls "$port"
  stop_capture; stop_server; save_keys "$name"
  check_capture "$name" "^reply: b'221 " '^220 aiosmtpd' '^STARTTLS' '^220 Ready to start TLS'
  local res; mapfile -t res < <(follow_res "$name")
  check_tls_capture "$name" "$port" 1.3 0x1303 - "$RE_STARTTLS$RE_AUTH_MAIL" '^AUTH PLAIN ' '^235 ' "${res[@]}"
  # The same capture with the key log inside it (pcapng Decryption Secrets
  # Block): tshark must decrypt it without being given the key log.
  editcap --inject-secrets "tls,$HERE/$name.keys" "$HERE/$name.pcap" "$HERE/$name-dsb.pcapng" \
    || die "editcap --inject-secrets failed"
  if ((HAVE_TSHARK)); then
    local dialogue
    dialogue=$(tls_dialogue "$HERE/$name-dsb.pcapng")
    grep -Eqi -- "$RE_STARTTLS$RE_AUTH_MAIL" <<<"$dialogue" \
      || die "$name-dsb.pcapng: dialogue decrypted with the embedded keys: '$dialogue'"
    printf '    %-30s decrypted with its DSB: %s\n' "$name-dsb.pcapng" "$dialogue" >&2
  fi
}

# openssl s_client reads the session from a FIFO: each line is sent only
# after the reply to the previous one has shown up in its log.  s_client
# treats a line starting with Q, R, K or k as a command (quit, renegotiate,
# KeyUpdate), so the SMTP commands that start with those letters are sent
# in lower case, and the message has no such line.  "K" sends a KeyUpdate
# that asks the server to update its keys too, "k" one that does not; s_client
# drops whatever else is in the same read, so the next line waits for its
# "KEYUPDATE" message.
sclient_send() { printf '%s\n' "$@" >&"$SCLIENT_FD"; }
sclient_has() { # sclient_has LOG REGEX COUNT
  kill -0 "$CLIENT_PID" 2>/dev/null || die "openssl s_client exited early"
  (($(grep -Ec -- "$2" "$1") >= $3))
}

capture_openssl_aiosmtpd_tls13_keyupdate_starttls() {
  local name=openssl-aiosmtpd-tls13-keyupdate-starttls port=587
  local clog="$HERE/$name.client.log" fifo="$WORK/s_client.in" line
  start_aiosmtpd_tls "$port" starttls
  start_capture "$name" "$port"
  mkfifo "$fifo"
  openssl s_client -connect "127.0.0.1:$port" -starttls smtp -name "$CLIENT_NAME" -crlf -brief \
    -tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384 -keylogfile "$WORK/$name.keys" \
    <"$fifo" >"$clog" 2>&1 &
  CLIENT_PID=$!
  exec {SCLIENT_FD}>"$fifo"
  wait_for 10 "the TLS handshake" sclient_has "$clog" '^CONNECTION ESTABLISHED' 1
  sclient_send "EHLO $CLIENT_NAME"
  wait_for 10 "the EHLO reply" sclient_has "$clog" '^250 HELP' 2   # the first one is from before TLS
  sclient_send K
  wait_for 10 "s_client to send a KeyUpdate" sclient_has "$clog" '^KEYUPDATE' 1
  sclient_send "MAIL FROM:<$FROM>"
  wait_for 10 "the MAIL reply" sclient_has "$clog" '^250 OK' 1
  sclient_send "rcpt TO:<bob@example.net>"
  wait_for 10 "the RCPT reply" sclient_has "$clog" '^250 2\.1\.5 ' 1
  sclient_send k
  wait_for 10 "s_client to send a KeyUpdate" sclient_has "$clog" '^KEYUPDATE' 2
  sclient_send DATA
  wait_for 10 "the DATA reply" sclient_has "$clog" '^354 ' 1
  while IFS= read -r line; do
    [[ $line != [QRKk.]* ]] || die "messages/$name.eml: a line starts with ${line:0:1}, which s_client would not send as is"
    sclient_send "$line"
  done <"$MESSAGES/$name.eml"
  sclient_send .
  wait_for 10 "the end-of-data reply" sclient_has "$clog" '^250 2\.0\.0 ' 1
  sclient_send quit
  wait_for 10 "the QUIT reply" sclient_has "$clog" '^221 ' 1
  exec {SCLIENT_FD}>&-
  wait "$CLIENT_PID" || die "openssl s_client failed (exit $?), see $name.client.log"
  CLIENT_PID=""
  stop_capture; stop_server; save_keys "$name"
  check_capture "$name" '^221 ' '^220 aiosmtpd' '^EHLO client' '^STARTTLS' '^220 Ready to start TLS'
  local res; mapfile -t res < <(follow_res "$name")
  check_tls_capture "$name" "$port" 1.3 0x1302 - "$RE_STARTTLS$RE_MAIL" "${res[@]}"
  if ((HAVE_TSHARK)); then
    # KeyUpdate is handshake type 24: K (client), the server's answer, k (client)
    local updates
    updates=$(tshark -r "$HERE/$name.pcap" -o "tls.keylog_file:$HERE/$name.keys" -Y 'tls.handshake.type==24' \
      -T fields -e tcp.srcport 2>/dev/null | tr '\n' ' ')
    [[ $updates =~ ^[0-9]+\ [0-9]+\ [0-9]+\ $ && ${updates%% *} != "$port" ]] \
      || die "$name.pcap: expected 3 KeyUpdates (client, server, client), got from ports: $updates"
    printf '    %-30s KeyUpdates from ports: %s\n' "$name" "$updates" >&2
  fi
}

capture_swaks_aiosmtpd_tls12_aes128gcm_starttls() {
  local name=swaks-aiosmtpd-tls12-aes128gcm-starttls port=587
  # The key log is written by the server (swaks cannot write one).
  start_aiosmtpd_tls "$port" starttls --keylog "$WORK/$name.keys"
  start_capture "$name" "$port"
  swaks --server 127.0.0.1 --port "$port" --tls --tls-protocol tlsv1_2 \
    --tls-cipher ECDHE-RSA-AES128-GCM-SHA256 "${swaks_common[@]}" --to bob@example.net \
    --data "$(swaks_data "$name")" >"$HERE/$name.client.log" 2>&1 \
    || die "client failed (exit $?), see $name.client.log"
  stop_capture; stop_server; save_keys "$name"
  check_capture "$name" '^<~  221 ' '^220 aiosmtpd' '^STARTTLS' '^220 Ready to start TLS'
  local res; mapfile -t res < <(follow_res "$name")
  check_tls_capture "$name" "$port" 1.2 0xc02f - "$RE_STARTTLS$RE_MAIL" "${res[@]}"
}

capture_curl_aiosmtpd_tls12_aes256gcm_smtps() {
  local name=curl-aiosmtpd-tls12-aes256gcm-smtps port=465
  start_aiosmtpd_tls "$port" smtps
  start_capture "$name" "$port"
  curl_smtp "$name" smtps "$port" --tls-max 1.2 --ciphers ECDHE-RSA-AES256-GCM-SHA384
  stop_capture; stop_server; save_keys "$name"
  check_capture "$name" '^< 250 2\.0\.0 Ok'
  local res; mapfile -t res < <(follow_res "$name")
  check_tls_capture "$name" "$port" 1.2 0xc030 - "$RE_SMTPS$RE_MAIL" "${res[@]}"
}

capture_curl_aiosmtpd_tls12_chacha_starttls() {
  local name=curl-aiosmtpd-tls12-chacha-starttls port=587
  start_aiosmtpd_tls "$port" starttls
  start_capture "$name" "$port"
  curl_smtp "$name" smtp "$port" --ssl-reqd --tls-max 1.2 --ciphers ECDHE-RSA-CHACHA20-POLY1305
  stop_capture; stop_server; save_keys "$name"
  check_capture "$name" '^< 250 2\.0\.0 Ok' '^220 aiosmtpd' '^STARTTLS' '^220 Ready to start TLS'
  local res; mapfile -t res < <(follow_res "$name")
  check_tls_capture "$name" "$port" 1.2 0xcca8 - "$RE_STARTTLS$RE_MAIL" "${res[@]}"
}

capture_curl_aiosmtpd_tls12_aes128sha_etm_starttls() {
  local name=curl-aiosmtpd-tls12-aes128sha-etm-starttls port=587
  # Python's default server cipher list leaves out the SHA-1 suites.
  start_aiosmtpd_tls "$port" starttls --ciphers DEFAULT
  start_capture "$name" "$port"
  curl_smtp "$name" smtp "$port" --ssl-reqd --tls-max 1.2 --ciphers ECDHE-RSA-AES128-SHA
  stop_capture; stop_server; save_keys "$name"
  check_capture "$name" '^< 250 2\.0\.0 Ok' '^220 aiosmtpd' '^STARTTLS' '^220 Ready to start TLS'
  local res; mapfile -t res < <(follow_res "$name")
  check_tls_capture "$name" "$port" 1.2 0xc013 etm "$RE_STARTTLS$RE_MAIL" "${res[@]}"
}

capture_smtplib_aiosmtpd_tls12_aes256sha384_mte_starttls() {
  local name=smtplib-aiosmtpd-tls12-aes256sha384-mte-starttls port=587
  start_aiosmtpd_tls "$port" starttls
  start_capture "$name" "$port"
  OPENSSL_CONF="$TLS_CONF/tls12-no-etm.cnf" smtplib_tls "$name" send starttls "$port" \
    --tls-max 1.2 --ciphers ECDHE-RSA-AES256-SHA384
  stop_capture; stop_server; save_keys "$name"
  check_capture "$name" "^reply: b'221 " '^220 aiosmtpd' '^STARTTLS' '^220 Ready to start TLS'
  local res; mapfile -t res < <(follow_res "$name")
  check_tls_capture "$name" "$port" 1.2 0xc028 mte "$RE_STARTTLS$RE_MAIL" "${res[@]}"
}

capture_curl_aiosmtpd_tls12_aes128sha256_mte_smtps() {
  local name=curl-aiosmtpd-tls12-aes128sha256-mte-smtps port=465
  start_aiosmtpd_tls "$port" smtps
  start_capture "$name" "$port"
  OPENSSL_CONF="$TLS_CONF/tls12-no-etm.cnf" curl_smtp "$name" smtps "$port" \
    --tls-max 1.2 --ciphers ECDHE-RSA-AES128-SHA256
  stop_capture; stop_server; save_keys "$name"
  check_capture "$name" '^< 250 2\.0\.0 Ok'
  local res; mapfile -t res < <(follow_res "$name")
  check_tls_capture "$name" "$port" 1.2 0xc027 mte "$RE_SMTPS$RE_MAIL" "${res[@]}"
}

capture_curl_aiosmtpd_tls13_hrr_starttls() {
  local name=curl-aiosmtpd-tls13-hrr-starttls port=587
  # The server accepts only P-256; curl (OpenSSL 3) offers the groups
  # X25519, P-256, ... but sends a key share for X25519 only, so the server
  # answers with a HelloRetryRequest for P-256 and curl sends a second
  # ClientHello with a P-256 key share.
  OPENSSL_CONF="$TLS_CONF/groups-p256.cnf" start_aiosmtpd_tls "$port" starttls
  start_capture "$name" "$port"
  curl_smtp "$name" smtp "$port" --ssl-reqd --tlsv1.3 --tls13-ciphers TLS_AES_128_GCM_SHA256
  stop_capture; stop_server; save_keys "$name"
  check_capture "$name" '^< 250 2\.0\.0 Ok' '^220 aiosmtpd' '^STARTTLS' '^220 Ready to start TLS'
  local res; mapfile -t res < <(follow_res "$name")
  check_tls_capture --hrr "$name" "$port" 1.3 0x1301 - "$RE_STARTTLS$RE_MAIL" "${res[@]}"
  if ((HAVE_TSHARK)); then
    # ClientHello 1: key share X25519 (0x001d) only; HRR: selected group
    # P-256 (0x0017); ClientHello 2: key share P-256; ServerHello: P-256.
    local groups
    groups=$(tshark -r "$HERE/$name.pcap" -Y 'tls.handshake.type==1 || tls.handshake.type==2' -T fields \
        -e tls.handshake.type -e tls.handshake.extensions_key_share_group \
        -e tls.handshake.extensions_key_share_selected_group 2>/dev/null \
      | awk -F '\t' '{ printf "%s%s:%s%s", (NR > 1 ? " " : ""), ($1 == 1 ? "C" : "S"), $2, $3 }')
    [[ $groups == 'C:29 S:23 C:23 S:23' ]] \
      || die "$name.pcap: expected key shares C:29 (X25519), HRR S:23 (P-256), C:23, S:23, got: $groups"
    printf '    %-30s HelloRetryRequest: ClientHellos %s, key share groups %s\n' "$name" \
      "$(tshark -r "$HERE/$name.pcap" -Y 'tls.handshake.type==1' 2>/dev/null | wc -l)" "$groups" >&2
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
  check_tools "${selected[@]}"
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
