#!/usr/bin/env bash
# Checks that `smtptape messages` reproduces, byte for byte, Zeek's expected .eml files from the
# captures that sent each message once via DATA (text/) and once via BDAT (binary/).
# Usage: scripts/check-zeek-eml.sh SHARED_CAPTURES_DIR [SMTPTAPE]
#        scripts/check-zeek-eml.sh SHARED_CAPTURES_DIR --smtptape PATH
#   e.g. scripts/check-zeek-eml.sh ../shared/captures
# The binary is SMTPTAPE (argument, --smtptape or the environment variable), else the repository's
# .build/release/smtptape, else .build/debug/smtptape. Build it first with
#   swift build -c release --product smtptape
# Prints one line per message and "N of M messages identical"; exits 0 only when every message
# is identical and there are as many captures as expected messages (6 baselines x 2 = 12).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
usage="usage: $0 SHARED_CAPTURES_DIR [SMTPTAPE | --smtptape PATH]"
root=${1:?$usage}
shift
tool=${SMTPTAPE:-}
case "${1:-}" in
  --smtptape) tool=${2:?$usage} ;;
  "") ;;
  *) tool=$1 ;;
esac
if [ -z "$tool" ]; then
  for candidate in "$repo/.build/release/smtptape" "$repo/.build/debug/smtptape"; do
    if [ -x "$candidate" ]; then tool=$candidate; break; fi
  done
fi
if [ -z "$tool" ] || [ ! -x "$tool" ]; then
  echo "check-zeek-eml: smtptape binary ${tool:-(none)} not found; build it with" >&2
  echo "  (cd $repo && swift build -c release --product smtptape)" >&2
  echo "or pass its path (--smtptape PATH, or SMTPTAPE=PATH)" >&2
  exit 2
fi
baselines="$root/baselines/zeek/eml-reextraction"
[ -d "$baselines" ] || { echo "check-zeek-eml: $baselines is missing" >&2; exit 2; }
expected_total=$(( 2 * $(find "$baselines" -maxdepth 1 -name '*.eml' | wc -l) ))
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
same=0; total=0
for kind in text binary; do
  for capture in "$root"/pcaps/zeek/eml-reextraction/"$kind"/*.pcap; do
    [ -e "$capture" ] || continue
    name=$(basename "$capture" .pcap)
    expected="$baselines/$name.eml"
    rm -rf "$work/out"
    total=$((total + 1))
    rc=0
    "$tool" messages "$capture" -o "$work/out" > /dev/null 2> "$work/stderr" || rc=$?
    if [ "$rc" -ne 0 ]; then
      echo "FAILED     $kind/$name: smtptape messages exited $rc: $(head -1 "$work/stderr")"
    elif cmp -s "$work/out/session-0001-message-01.eml" "$expected"; then
      same=$((same + 1)); echo "identical  $kind/$name"
    else
      echo "DIFFERS    $kind/$name: $(cmp "$work/out/session-0001-message-01.eml" "$expected" 2>&1 | head -1)"
    fi
  done
done
echo "$same of $total messages identical"
if [ "$total" -ne "$expected_total" ]; then
  echo "check-zeek-eml: expected $expected_total captures (two per baseline .eml), found $total" >&2
  exit 1
fi
[ "$same" -eq "$total" ]
