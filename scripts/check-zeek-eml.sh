#!/usr/bin/env bash
# Checks that `smtptape messages` reproduces, byte for byte, Zeek's expected .eml files from the
# captures that sent each message once via DATA (text/) and once via BDAT (binary/).
# Usage: scripts/check-zeek-eml.sh SHARED_CAPTURES_DIR [SMTPTAPE]
#   e.g. scripts/check-zeek-eml.sh ../shared/captures
set -euo pipefail
root=${1:?usage: $0 SHARED_CAPTURES_DIR [SMTPTAPE]}
tool=${2:-$(dirname "$0")/../.build/release/smtptape}
[ -x "$tool" ] || tool=$(dirname "$0")/../.build/debug/smtptape
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
same=0; total=0
for kind in text binary; do
  for capture in "$root"/pcaps/zeek/eml-reextraction/"$kind"/*.pcap; do
    name=$(basename "$capture" .pcap)
    expected="$root/baselines/zeek/eml-reextraction/$name.eml"
    rm -rf "$work/out"
    "$tool" messages "$capture" -o "$work/out" > /dev/null
    total=$((total + 1))
    if cmp -s "$work/out/session-0001-message-01.eml" "$expected"; then
      same=$((same + 1)); echo "identical  $kind/$name"
    else
      echo "DIFFERS    $kind/$name: $(cmp "$work/out/session-0001-message-01.eml" "$expected" 2>&1 | head -1)"
    fi
  done
done
echo "$same of $total messages identical"
[ "$same" -eq "$total" ]
