#!/usr/bin/env bash
# From a fresh clone: installs the prerequisites, builds smtptape (release) and prints the
# transcripts of bundled captures: a pipelined session, an AUTH LOGIN session (its secrets
# redacted), and a STARTTLS session decrypted with the key log its client wrote.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-prerequisites.sh
swift build -c release --product smtptape
.build/release/smtptape transcript Captures/swaks-sink-pipelining.pcap Captures/smtplib-aiosmtpd-auth-login.pcap
.build/release/smtptape transcript --keylog Captures/smtplib-aiosmtpd-tls13-chacha-starttls-auth.keys \
    Captures/smtplib-aiosmtpd-tls13-chacha-starttls-auth.pcap
