#!/usr/bin/env bash
# After Captures/make-captures.sh has recorded new captures, brings what is derived from them up
# to date: the recorded example scenarios are extracted again, and for each golden transcript that
# no longer matches, the new transcript is written beside it as NAME.txt.new. A person compares
# each .new file with its golden file and moves it into place by hand: the goldens are only worth
# that review, and no update passes a test by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
# Each capture on its own (so each scenario is its capture's session 1), TLS captures with the
# key log beside them (Captures/NAME.keys).
for capture in Captures/*.pcap; do
    keys=${capture%.pcap}.keys
    keylog=()
    [[ -f $keys ]] && keylog=(--keylog "$keys")
    git rm -q --ignore-unmatch "Scenarios/recorded/$(basename "${capture%.pcap}")-session-"*.yaml
    .build/debug/smtptape extract --force "${keylog[@]}" "$capture" -o Scenarios/recorded > /dev/null
done
SMTPTAPE_UPDATE_GOLDEN=1 swift test --skip-build --filter transcriptMatchesGolden > /dev/null || true
ls Tests/SMTPCaptureTests/Golden/*.new 2>/dev/null | sed 's/^/review: /' || echo "all golden transcripts match"
git status --short Scenarios/recorded
