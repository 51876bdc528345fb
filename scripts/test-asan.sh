#!/usr/bin/env bash
# The byte-level targets under AddressSanitizer: the C kernels (scan, base64, the input stream),
# the dialogue, TCP reassembly and capture reading, TLS decryption, and the smtptape binary the
# capture tests run, all built with -sanitize=address in their own scratch folder (.build-asan), so the normal
# build is untouched. SMTPTAPE_CORE_ONLY leaves the networking targets (replay, NIO, NIOSSL and
# its BoringSSL) out of this build (see Package.swift), which keeps it small. Leak detection is off: the leaks it reports come from Foundation's Process
# and XCTest, not from smtptape; an out-of-bounds access or use after free fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
# --clients: the capture tests also compare decryption with tshark and run real clients.
scripts/install-prerequisites.sh --clients
export SMTPTAPE_CORE_ONLY=1
swift build --build-tests --sanitize=address --scratch-path .build-asan
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
  swift test --skip-build --sanitize=address --scratch-path .build-asan --filter 'SMTPCoreTests|SMTPCaptureTests|SMTPTLSTests'
