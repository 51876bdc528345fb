#!/usr/bin/env bash
# After Captures/make-captures.sh has recorded new captures, brings what is derived from them up
# to date: the golden transcripts the tests compare against, and the recorded example scenarios.
# Review the diff before committing: the goldens are only worth what that review is.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
SMTPTAPE_UPDATE_GOLDEN=1 swift test --skip-build --filter transcriptMatchesGolden > /dev/null || true
rm -rf Scenarios/recorded
.build/debug/smtptape extract Captures/*.pcap -o Scenarios/recorded > /dev/null
swift test --skip-build
git status --short Tests/SMTPCaptureTests/Golden Scenarios/recorded
