#!/usr/bin/env bash
# Runs the three oracles over the public SMTP captures of other projects (../shared/captures):
#   1. scripts/compare-tshark.py: every connection's byte streams against tshark's "Follow TCP
#      stream", compared with the expected table Tests/Corpus/expected-tshark.tsv (category and
#      byte counts per connection; a connection tshark decodes as SMTP that smtptape does not
#      report fails unless the table marks it ignored, with the reason);
#   2. scripts/check-zeek-eml.sh: the messages against Zeek's expected .eml files, 12 of 12;
#   3. scripts/scenario-roundtrip.py: every extracted scenario valid, canonical and the same
#      dialogue as its capture.
# Fails (exit 1) when any of them does; a missing tool (python3, tshark) is a failure, never a
# skip (scripts/install-prerequisites.sh --corpus installs them). .ci/run runs this after the
# unit tests when ../shared/captures is there.
#
# Usage: scripts/check-corpus.sh [--smtptape PATH] [--write-expected] [CAPTURES_DIR]
#   CAPTURES_DIR      default: ../shared/captures relative to the repository
#   --smtptape PATH   binary to check (or SMTPTAPE=PATH); by default this script builds the
#                     debug binary with `swift build --product smtptape` (a no-op after
#                     scripts/test.sh) and uses that
#   --write-expected  rewrite Tests/Corpus/expected-tshark.tsv from this run instead of comparing
#                     (deliberate updates only, never in CI: review `git diff` and commit it with
#                     the reason); rows marked ignored keep their reasons
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
expected_table=Tests/Corpus/expected-tshark.tsv
expected_eml=12

tool=${SMTPTAPE:-}
write=0
captures=
while [ $# -gt 0 ]; do
  case "$1" in
    --smtptape) tool=${2:?--smtptape needs a path}; shift ;;
    --write-expected) write=1 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    -*) echo "check-corpus: unknown option $1 (try --help)" >&2; exit 64 ;;
    *) captures=$1 ;;
  esac
  shift
done
captures=${captures:-$repo/../shared/captures}
if [ ! -d "$captures/pcaps" ]; then
  echo "check-corpus: $captures is not the shared captures folder (no pcaps/ in it)" >&2
  exit 1
fi
captures=$(cd "$captures" && pwd)

missing=0
for t in python3 tshark; do
  command -v "$t" > /dev/null || { echo "check-corpus: $t not found; run scripts/install-prerequisites.sh --corpus" >&2; missing=1; }
done
[ "$missing" -eq 0 ] || exit 1

if [ -z "$tool" ]; then
  echo "== swift build --product smtptape"
  swift build --product smtptape
  tool=$(swift build --show-bin-path)/smtptape
fi
[ -x "$tool" ] || { echo "check-corpus: smtptape binary $tool not found; build it with swift build --product smtptape" >&2; exit 1; }

echo "== corpus: $captures ($(find -L "$captures" -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.cap' \) | wc -l) captures), $tool, $(tshark --version | head -1)"
start=$SECONDS

if [ "$write" -eq 1 ]; then
  mkdir -p "$(dirname "$expected_table")"
  python3 scripts/compare-tshark.py "$captures" --smtptape "$tool" --quiet --write-expected "$expected_table"
  echo "review: git diff $expected_table"
  exit 0
fi

work=$(mktemp -d)
roundtrip_pid=
cleanup() { [ -z "$roundtrip_pid" ] || kill "$roundtrip_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# The round trip runs beside the tshark comparison (each uses about one core); their output is
# printed in order afterwards.
( t0=$SECONDS; rc=0
  python3 scripts/scenario-roundtrip.py "$captures" --smtptape "$tool" --quiet > "$work/roundtrip.out" 2>&1 || rc=$?
  echo "$rc $((SECONDS - t0))" > "$work/roundtrip.rc" ) &
roundtrip_pid=$!

failures=()
echo
echo "== 1. tshark stream comparison (scripts/compare-tshark.py, expected $expected_table)"
t0=$SECONDS; rc=0
python3 scripts/compare-tshark.py "$captures" --smtptape "$tool" --quiet --jobs 2 --expected "$expected_table" || rc=$?
echo "   ($((SECONDS - t0)) s)"
[ "$rc" -eq 0 ] || failures+=("tshark comparison differs from $expected_table (exit $rc)")

echo
echo "== 2. Zeek .eml messages (scripts/check-zeek-eml.sh)"
t0=$SECONDS; rc=0
scripts/check-zeek-eml.sh "$captures" --smtptape "$tool" > "$work/zeek.out" 2>&1 || rc=$?
cat "$work/zeek.out"
echo "   ($((SECONDS - t0)) s)"
if [ "$rc" -ne 0 ] || ! grep -qx "$expected_eml of $expected_eml messages identical" "$work/zeek.out"; then
  failures+=("Zeek .eml check is not $expected_eml of $expected_eml (exit $rc)")
fi

echo
echo "== 3. scenario round trip (scripts/scenario-roundtrip.py)"
wait "$roundtrip_pid" || true
roundtrip_pid=
cat "$work/roundtrip.out"
read -r rc seconds < "$work/roundtrip.rc" || { rc=1; seconds=?; }
echo "   ($seconds s, beside step 1)"
[ "$rc" -eq 0 ] || failures+=("scenario round trip failed (exit $rc)")

echo
if [ ${#failures[@]} -gt 0 ]; then
  echo "corpus check FAILED in $((SECONDS - start)) s:"
  printf '  - %s\n' "${failures[@]}"
  echo "(if a change of the tshark table is intended: scripts/check-corpus.sh --write-expected, review git diff, commit it with the reason)"
  exit 1
fi
echo "corpus check passed in $((SECONDS - start)) s"
