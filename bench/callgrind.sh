#!/usr/bin/env bash
# Profile `smtptape transcript --data none` with callgrind on the first 200,000 packets
# of the benchmark capture, then print the 25 most expensive functions.
#
# Usage: bench/callgrind.sh [--skip-build] [--inclusive]
#   --skip-build  do not run `swift build -c release --product smtptape`; use the existing binary
#   --inclusive   rank functions by inclusive cost (callees included) instead of self cost
# Environment (defaults in brackets):
#   BENCH_CAPTURE            full capture [bench/work/bench.pcap]; built by make-capture.sh if missing
#   BENCH_PORT               SMTP port [10025]
#   BENCH_CALLGRIND_PACKETS  packets to keep [200000]
#   BENCH_SMTPTAPE           smtptape binary [.build/release/smtptape, built by this script];
#                            when set, nothing is built and the binary must exist
# Output: bench/work/callgrind.out (open it with kcachegrind/qcachegrind for more), and the
# cut capture bench/work/bench-<N>.pcap. Valgrind is ~50x slower than a native run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
work=$here/work

skip_build=0
inclusive=no
for arg in "$@"; do
    case $arg in
        --skip-build) skip_build=1 ;;
        --inclusive) inclusive=yes ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "callgrind.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
    esac
done

capture=${BENCH_CAPTURE:-$work/bench.pcap}
port=${BENCH_PORT:-10025}
packets=${BENCH_CALLGRIND_PACKETS:-200000}
smtptape=${BENCH_SMTPTAPE:-$root/.build/release/smtptape}
[[ -n ${BENCH_SMTPTAPE:-} ]] && skip_build=1
out=$work/callgrind.out

for t in valgrind callgrind_annotate; do
    command -v "$t" >/dev/null || { echo "callgrind.sh: $t not found (Debian/Ubuntu: apt-get install valgrind)" >&2; exit 1; }
done
mkdir -p "$work"

if [[ $skip_build -eq 0 ]]; then
    echo "== swift build -c release --product smtptape"
    (cd "$root" && swift build -c release --product smtptape)
fi
if [[ ! -x $smtptape ]]; then
    echo "callgrind.sh: $smtptape does not exist; build it with" >&2
    echo "  (cd $root && swift build -c release --product smtptape)" >&2
    echo "or run without --skip-build and without BENCH_SMTPTAPE" >&2
    exit 1
fi

"$here/make-capture.sh" "$capture"

small=$work/$(basename "${capture%.pcap}")-$packets.pcap
if [[ ! -s $small || $capture -nt $small ]]; then
    echo "== cutting the first $packets packets to $small"
    if command -v editcap >/dev/null; then
        editcap -r "$capture" "$small.tmp" "1-$packets"
    else
        tcpdump -r "$capture" -c "$packets" -w "$small.tmp" 2>/dev/null
    fi
    mv -f "$small.tmp" "$small"
fi

# valgrind 3.19 cannot read the DWARF 5 debug info Swift emits ("unhandled dwarf2 abbrev form"):
# profile a copy without it. Function names come from the symbol table, which stays.
stripped="$root/bench/work/smtptape-nodebug"
strip -g -o "$stripped" "$smtptape"
smtptape=$stripped
echo "== valgrind --tool=callgrind: $smtptape transcript --data none --port $port $small"
valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$smtptape" transcript --data none --port "$port" "$small" > /dev/null

# Swift symbols are mangled; demangle them when the toolchain is around.
demangle() {
    if command -v swift >/dev/null; then swift demangle --simplified; else cat; fi
}

echo
echo "== top 25 functions by $([[ $inclusive == yes ]] && echo inclusive || echo self) cost (Ir = instructions executed)"
# Print the totals, then the first 25 rows of the function table.
callgrind_annotate --auto=no --threshold=100 --inclusive="$inclusive" "$out" | demangle | awk '
    /PROGRAM TOTALS/ { print; next }
    /file:function/  { table = 1; print; next }
    table && /^-+$/  { print; next }
    table && NF      { if (++n <= 25) print }
'
echo
echo "full profile: $out (callgrind_annotate $out | less, or kcachegrind)"
