#!/usr/bin/env bash
# From a fresh clone: installs the prerequisites, builds smtptape (release) and prints the
# transcript of a bundled capture.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-prerequisites.sh
swift build -c release --product smtptape
.build/release/smtptape transcript Captures/swaks-sink-pipelining.pcap Captures/smtplib-aiosmtpd-auth-login.pcap
