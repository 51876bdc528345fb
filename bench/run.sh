#!/usr/bin/env bash
# smtptape benchmark: time smtptape against the plain libpcap loop and tshark.
#
# Usage: bench/run.sh [--skip-build] [--check]
#   --skip-build  do not run `swift build -c release`; use the existing binary
#   --check       exit 3 if a target in bench/README.md is missed
# Environment (defaults in brackets):
#   BENCH_CAPTURE      capture to read [bench/work/bench.pcap]; built by make-capture.sh if missing
#   BENCH_PORT         SMTP port in the capture [10025]
#   BENCH_RUNS         runs per command, the best is kept [3]
#   BENCH_TSHARK_RUNS  runs of tshark, which is slow (~20 s) [1]; 0 skips it
#   BENCH_SMTPTAPE     smtptape binary [.build/release/smtptape]
# Writes the table to bench/work/results.txt; each command's stderr goes to bench/work/*.stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
work=$here/work

skip_build=0
check=0
for arg in "$@"; do
    case $arg in
        --skip-build) skip_build=1 ;;
        --check) check=1 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "run.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
    esac
done

capture=${BENCH_CAPTURE:-$work/bench.pcap}
port=${BENCH_PORT:-10025}
runs=${BENCH_RUNS:-3}
tshark_runs=${BENCH_TSHARK_RUNS:-1}
smtptape=${BENCH_SMTPTAPE:-$root/.build/release/smtptape}
gnu_time=/usr/bin/time
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: BENCH_RUNS must be a positive integer" >&2; exit 2; }
[[ $tshark_runs =~ ^[0-9]+$ ]] || { echo "run.sh: BENCH_TSHARK_RUNS must be an integer (0 skips tshark)" >&2; exit 2; }

# --- prerequisites ---------------------------------------------------------------------------
if [[ ! -x $gnu_time ]] || ! "$gnu_time" --version 2>&1 | grep -q 'GNU'; then
    cat >&2 <<EOF
run.sh: GNU time is missing: $gnu_time must be GNU time (it measures peak RSS with -f '%M').
        Debian/Ubuntu: apt-get install time
EOF
    exit 1
fi
command -v cc >/dev/null || { echo "run.sh: no C compiler (cc) for pcap_loop.c" >&2; exit 1; }
have_tshark=1
command -v tshark >/dev/null || { have_tshark=0; echo "run.sh: tshark not found; its row is skipped (apt-get install tshark)" >&2; }

mkdir -p "$work"

# --- build -----------------------------------------------------------------------------------
if [[ $skip_build -eq 0 ]]; then
    echo "== swift build -c release --product smtptape"
    (cd "$root" && swift build -c release --product smtptape)
fi
if [[ ! -x $smtptape ]]; then
    echo "run.sh: $smtptape does not exist; build it (run without --skip-build)" >&2
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
now() { if [[ -n ${EPOCHREALTIME:-} ]]; then echo "$EPOCHREALTIME"; else date +%s.%N; fi; }

# measure KEY RUNS STDOUT CMD...
# Runs CMD RUNS times under GNU time with stdout to STDOUT and stderr to $work/KEY.stderr.
# Sets best_s[KEY] (best wall-clock seconds, measured around the run with microsecond
# resolution because GNU time's %e has only 10 ms), peak_kib[KEY] (largest %M over the
# runs) and status[KEY] ("ok" or "failed (exit N)").
declare -A best_s peak_kib status
measure() {
    local key=$1 n=$2 stdout=$3; shift 3
    local tf=$work/$key.time err=$work/$key.stderr i t0 t1 rc e rss s
    best_s[$key]=
    peak_kib[$key]=0
    status[$key]=ok
    : > "$err"
    for ((i = 1; i <= n; i++)); do
        t0=$(now)
        rc=0
        "$gnu_time" -f '%e %M' -o "$tf" "$@" > "$stdout" 2>> "$err" || rc=$?
        t1=$(now)
        if [[ $rc -ne 0 ]]; then
            status[$key]="failed (exit $rc)"
            echo "   run $i: FAILED with exit status $rc; last lines of $err:" >&2
            tail -n 5 "$err" | sed 's/^/     /' >&2
            return 0
        fi
        read -r e rss < <(tail -n 1 "$tf")
        s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
        printf '   run %d: %s s (GNU time %s s), peak RSS %.1f MiB\n' "$i" "$s" "$e" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')"
        if [[ -z ${best_s[$key]} ]] || awk -v a="$s" -v b="${best_s[$key]}" 'BEGIN { exit !(a < b) }'; then
            best_s[$key]=$s
        fi
        if ((rss > peak_kib[$key])); then peak_kib[$key]=$rss; fi
    done
}

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
measure loop "$runs" "$work/pcap_loop.out" "${loop_cmd[@]}"
echo "== ${label[none]} (runs: $runs)"
measure none "$runs" /dev/null "${none_cmd[@]}"
echo "== ${label[json]} (runs: $runs)"
measure json "$runs" /dev/null "${json_cmd[@]}"
if [[ $have_tshark -eq 1 && $tshark_runs -gt 0 ]]; then
    echo "== ${label[tshark]} (runs: $tshark_runs)"
    measure tshark "$tshark_runs" /dev/null "${tshark_cmd[@]}"
elif [[ $have_tshark -eq 0 ]]; then
    status[tshark]="skipped (not installed)"
else
    status[tshark]="skipped (BENCH_TSHARK_RUNS=0)"
fi

# --- report ----------------------------------------------------------------------------------
size=$(stat -c %s "$capture")
packets=$(awk '/^packets/ { print $2 }' "$work/pcap_loop.out" 2>/dev/null || true)
sessions=$(tcpdump -n -r "$capture" "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn" 2>/dev/null | wc -l || true)

ok() { [[ ${status[$1]} == ok ]]; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

report=$work/results.txt
{
    echo "smtptape benchmark, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "host: $(uname -srm), $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)"
    echo "capture: $capture"
    awk -v s="$size" -v p="${packets:-?}" -v n="${sessions:-?}" \
        'BEGIN { printf "  %.1f MB (%d bytes), %s packets, %s TCP sessions (client SYNs)\n", s / 1e6, s, p, n }'
    echo "runs: best of $runs wall-clock (tshark: $tshark_runs); peak RSS is the largest over the runs"
    echo
    printf '%-28s %9s %12s %12s %12s\n' "command" "best s" "peak RSS MiB" "x pcap loop" "tshark/this"
    printf '%-28s %9s %12s %12s %12s\n' "----------------------------" "---------" "------------" "------------" "------------"
    for k in "${keys[@]}"; do
        if ok "$k"; then
            x_loop=n/a; x_tshark=n/a
            ok loop && x_loop=$(ratio "${best_s[$k]}" "${best_s[loop]}")
            ok tshark && x_tshark=$(ratio "${best_s[tshark]}" "${best_s[$k]}")
            printf '%-28s %9.3f %12.1f %12s %12s\n' "${label[$k]}" "${best_s[$k]}" \
                "$(awk -v k="${peak_kib[$k]}" 'BEGIN { print k / 1024 }')" "$x_loop" "$x_tshark"
        else
            printf '%-28s %s\n' "${label[$k]}" "${status[$k]}"
        fi
    done
    echo
    echo "commands:"
    for k in "${keys[@]}"; do echo "  ${label[$k]}: ${cmdline[$k]}"; done
    echo
    echo "targets (bench/README.md):"
    target() { # description value op limit unit
        local verdict=MISSED
        awk -v v="$2" -v l="$4" -v op="$3" 'BEGIN { exit !((op == ">=" && v >= l) || (op == "<=" && v <= l) || (op == "<" && v < l)) }' && verdict=met
        printf '  %-52s %8s %s (want %s %s) %s\n' "$1" "$2" "$5" "$3" "$4" "$verdict"
        [[ $verdict == met ]]
    }
    missed=0
    if ok none && ok tshark; then target "--data none vs tshark (tshark/this)" "$(ratio "${best_s[tshark]}" "${best_s[none]}")" ">=" 50 x || missed=1; fi
    if ok none && ok loop; then target "--data none vs pcap loop (this/loop)" "$(ratio "${best_s[none]}" "${best_s[loop]}")" "<=" 3 x || missed=1; fi
    if ok json && ok tshark; then target "--format json vs tshark (tshark/this)" "$(ratio "${best_s[tshark]}" "${best_s[json]}")" ">=" 20 x || missed=1; fi
    for k in none json; do
        if ok "$k"; then target "${label[$k]} peak RSS" "$(awk -v k="${peak_kib[$k]}" 'BEGIN { printf "%.1f", k / 1024 }')" "<" 100 MiB || missed=1; fi
    done
    for k in "${keys[@]}"; do
        if ! ok "$k"; then echo "  ${label[$k]}: ${status[$k]}; its targets are not evaluated"; fi
    done
} > "$report.tmp"   # a { } group runs in this shell, so $missed survives
mv "$report.tmp" "$report"

echo
cat "$report"
echo
echo "(written to $report)"

for k in loop none json; do
    ok "$k" || exit 1
done
[[ ${status[tshark]} == failed* ]] && exit 1
[[ $check -eq 1 && $missed -ne 0 ]] && exit 3
exit 0
