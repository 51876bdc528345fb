#!/usr/bin/env bash
# smtptape benchmark: time smtptape against the plain libpcap loop and tshark.
#
# Usage: bench/run.sh [--skip-build] [--check] [--publish]
#   --skip-build  do not run `swift build -c release --product smtptape`; use the existing binary
#   --check       exit 3 if a target in bench/README.md is missed
#   --publish     copy this run's figures (bench/work/results.txt) into README.md's Performance
#                 section and bench/README.md's Results section (bench/publish.py)
# Environment (defaults in brackets):
#   BENCH_CAPTURE      capture to read [bench/work/bench.pcap]; built by make-capture.sh if missing
#   BENCH_PORT         SMTP port in the capture [10025]
#   BENCH_RUNS         runs of every command, tshark included; medians are compared [5]
#   BENCH_SMTPTAPE     smtptape binary to time [.build/release/smtptape, built by this script];
#                      when set, nothing is built and the binary must exist
# Every command runs BENCH_RUNS times; the table gives the median wall-clock time (and the
# range), and every ratio and target compares medians.
# Writes the table to bench/work/results.txt; each command's stderr goes to bench/work/*.stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
work=$here/work

skip_build=0
check=0
publish=0
for arg in "$@"; do
    case $arg in
        --skip-build) skip_build=1 ;;
        --check) check=1 ;;
        --publish) publish=1 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "run.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
    esac
done

capture=${BENCH_CAPTURE:-$work/bench.pcap}
port=${BENCH_PORT:-10025}
runs=${BENCH_RUNS:-5}
smtptape=${BENCH_SMTPTAPE:-$root/.build/release/smtptape}
[[ -n ${BENCH_SMTPTAPE:-} ]] && skip_build=1
gnu_time=/usr/bin/time
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: BENCH_RUNS must be a positive integer" >&2; exit 2; }
if [[ -n ${BENCH_TSHARK_RUNS:-} ]]; then
    echo "run.sh: BENCH_TSHARK_RUNS is gone: tshark runs BENCH_RUNS times like the others" >&2
    exit 2
fi

# --- prerequisites ---------------------------------------------------------------------------
if [[ ! -x $gnu_time ]] || ! "$gnu_time" --version 2>&1 | grep -q 'GNU'; then
    cat >&2 <<EOF
run.sh: GNU time is missing: $gnu_time must be GNU time (it measures peak RSS with -f '%M').
        Debian/Ubuntu: apt-get install time
EOF
    exit 1
fi
command -v cc >/dev/null || { echo "run.sh: no C compiler (cc) for pcap_loop.c" >&2; exit 1; }
command -v tshark >/dev/null || { echo "run.sh: tshark not found (Debian/Ubuntu: apt-get install tshark)" >&2; exit 1; }

mkdir -p "$work"

# --- build -----------------------------------------------------------------------------------
if [[ $skip_build -eq 0 ]]; then
    echo "== swift build -c release --product smtptape"
    (cd "$root" && swift build -c release --product smtptape)
fi
if [[ ! -x $smtptape ]]; then
    echo "run.sh: $smtptape does not exist; build it with" >&2
    echo "  (cd $root && swift build -c release --product smtptape)" >&2
    echo "or run without --skip-build and without BENCH_SMTPTAPE" >&2
    exit 1
fi

echo "== capture"
"$here/make-capture.sh" "$capture"

if [[ ! -x $work/pcap_loop || $here/pcap_loop.c -nt $work/pcap_loop ]]; then
    echo "== cc -O2 pcap_loop.c"
    cc -O2 -o "$work/pcap_loop" "$here/pcap_loop.c" -lpcap
fi

# One untimed pass so that the first timed run does not pay for the disk.
"$work/pcap_loop" "$capture" > /dev/null

# --- measurement -----------------------------------------------------------------------------
measure_files=$work/
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

keys=(loop none json tshark)
declare -A label cmdline
label[loop]="pcap loop (libpcap floor)"
label[none]="smtptape --data none"
label[json]="smtptape --format json"
label[tshark]="tshark (SMTP fields)"

loop_cmd=("$work/pcap_loop" "$capture")
none_cmd=("$smtptape" transcript --data none --port "$port" "$capture")
json_cmd=("$smtptape" transcript --format json --port "$port" "$capture")
tshark_cmd=(tshark -r "$capture" -d "tcp.port==$port,smtp" -Y smtp -T fields
            -e tcp.stream -e smtp.req.command -e smtp.response.code)
cmdline[loop]="${loop_cmd[*]}"
cmdline[none]="${none_cmd[*]} > /dev/null"
cmdline[json]="${json_cmd[*]} > /dev/null"
cmdline[tshark]="${tshark_cmd[*]} > /dev/null"

echo "== ${label[loop]} (runs: $runs)"
measure loop "$work/pcap_loop.out" "${loop_cmd[@]}"
echo "== ${label[none]} (runs: $runs)"
measure none /dev/null "${none_cmd[@]}"
echo "== ${label[json]} (runs: $runs)"
measure json /dev/null "${json_cmd[@]}"
echo "== ${label[tshark]} (runs: $runs)"
measure tshark /dev/null "${tshark_cmd[@]}"

# --- report ----------------------------------------------------------------------------------
size=$(stat -c %s "$capture")
packets=$(awk '/^packets/ { print $2 }' "$work/pcap_loop.out" 2>/dev/null || true)
sessions=$(tcpdump -n -r "$capture" "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn" 2>/dev/null | wc -l || true)
revision=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null) ]] && revision+=" (with uncommitted changes)"
libpcap=$(pkg-config --modversion libpcap 2>/dev/null || echo unknown)
tshark_version=$(tshark --version 2>/dev/null | head -1 | awk '{ print $3 }')
swift_version=$(swift --version 2>/dev/null | grep -oE 'Swift version [0-9.]+' | head -1 || true)


report=$work/results.txt
{
    echo "smtptape benchmark run of $(date -u '+%Y-%m-%d %H:%M UTC'), smtptape $revision"
    echo "host: $(uname -sr), $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)); ${swift_version:-Swift ?} release build, libpcap $libpcap, TShark ${tshark_version:-?}"
    awk -v s="$size" -v p="${packets:-?}" -v n="${sessions:-?}" \
        'BEGIN { printf "capture: %.1f MB (%d bytes), %s packets, %s TCP sessions (client SYNs), read from the page cache\n", s / 1e6, s, p, n }'
    echo "runs: $runs of each command (tshark too); times are medians of the wall-clock times, with the fastest and slowest run; peak RSS is the largest over the runs; ratios compare medians"
    echo
    echo "| command | median s | fastest to slowest s | peak RSS MiB | x pcap loop | tshark/this |"
    echo "|---|---:|---:|---:|---:|---:|"
    for k in "${keys[@]}"; do
        if ok "$k"; then
            x_loop=n/a; x_tshark=n/a
            ok loop && x_loop=$(ratio "${median_s[$k]}" "${median_s[loop]}")
            ok tshark && x_tshark=$(ratio "${median_s[tshark]}" "${median_s[$k]}")
            echo "| ${label[$k]} | ${median_s[$k]} | ${min_s[$k]} to ${max_s[$k]} | $(mib "${peak_kib[$k]}") | $x_loop | $x_tshark |"
        else
            echo "| ${label[$k]} | ${status[$k]} | | | | |"
        fi
    done
    echo
    echo "targets (bench/README.md), on the medians:"
    target() { # description value op limit unit
        local verdict=missed
        awk -v v="$2" -v l="$4" -v op="$3" 'BEGIN { exit !((op == ">=" && v >= l) || (op == "<=" && v <= l) || (op == "<" && v < l)) }' && verdict=met
        echo "- $1: $2 $5, want $3 $4 $5: $verdict"
        [[ $verdict == met ]]
    }
    missed=0
    if ok none && ok tshark; then target "\`--data none\` vs tshark (tshark/this)" "$(ratio "${median_s[tshark]}" "${median_s[none]}")" ">=" 50 x || missed=1
    else echo "- \`--data none\` vs tshark: not evaluated (a command failed)"; missed=1; fi
    if ok none && ok loop; then target "\`--data none\` vs pcap loop (this/loop)" "$(ratio "${median_s[none]}" "${median_s[loop]}")" "<=" 3 x || missed=1
    else echo "- \`--data none\` vs pcap loop: not evaluated (a command failed)"; missed=1; fi
    if ok json && ok tshark; then target "\`--format json\` vs tshark (tshark/this)" "$(ratio "${median_s[tshark]}" "${median_s[json]}")" ">=" 20 x || missed=1
    else echo "- \`--format json\` vs tshark: not evaluated (a command failed)"; missed=1; fi
    for k in none json; do
        if ok "$k"; then target "${label[$k]} peak RSS" "$(mib "${peak_kib[$k]}")" "<" 100 MiB || missed=1
        else echo "- ${label[$k]} peak RSS: not evaluated (the command failed)"; missed=1; fi
    done
    echo
    echo "run times (s):"
    for k in "${keys[@]}"; do echo "- ${label[$k]}: $(echo ${times_s[$k]:-none})"; done
    echo
    echo "commands:"
    for k in "${keys[@]}"; do echo "- ${label[$k]}: \`${cmdline[$k]//$root\//}\`"; done
} > "$report.tmp"   # a { } group runs in this shell, so $missed survives
mv "$report.tmp" "$report"

echo
cat "$report"
echo
echo "(written to $report)"

for k in "${keys[@]}"; do
    ok "$k" || exit 1
done
if [[ $publish -eq 1 ]]; then
    "$here/publish.py" "$report"
fi
[[ $check -eq 1 && $missed -ne 0 ]] && exit 3
exit 0
