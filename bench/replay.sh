#!/usr/bin/env bash
# Replay benchmark: Postfix's smtp-source against `smtptape replay`, Postfix's smtp-sink and an
# aiosmtpd sink, in turn in the same run; then how fast `smtptape replay` starts serving.
#
# Usage: bench/replay.sh [--skip-build] [--in-process] [--check]
#   --skip-build  do not run `swift build -c release --product smtptape`; use the existing binary
#   --in-process  also time withReplayServer (SMTPTapeTesting) to serving: builds the tests
#                 (debug, `swift build --build-tests`) and runs the opt-in StartupBenchmark test
#   --check       exit 3 if a target in bench/README.md is missed
# Environment (defaults in brackets):
#   BENCH_REPLAY_PORT   first of three loopback ports: replay, smtp-sink, aiosmtpd [10040]
#   BENCH_PARALLEL      smtp-source -s: sessions in parallel [20]
#   BENCH_MESSAGES      smtp-source -m: messages per run, one per connection [20000]
#   BENCH_MSG_SIZE      smtp-source -l: payload bytes per message [1000]
#   BENCH_RUNS          runs of each server; medians are compared [5]
#   BENCH_STARTUP_RUNS  launches of `smtptape replay` timed to serving [20]
#   BENCH_REPLAY_STDERR where replay's verdicts go: file (bench/work/replay-N.stderr, checked
#                       for one passed verdict per message) or null (/dev/null) [file]
#   BENCH_SMTPTAPE      smtptape binary [.build/release/smtptape, built by this script];
#                       when set, nothing is built and the binary must exist
# Each run starts each server afresh, waits until it listens, then times one smtp-source run
# against it: messages/s from smtp-source's wall-clock time, the server's CPU seconds as the
# change in utime+stime (/proc/PID/stat, all threads) over that run. Servers take turns within a
# run (replay, smtp-sink, aiosmtpd), so a slow spell on the machine hits all three.
# Writes the table to bench/work/replay-results.txt; logs go to bench/work/replay-*.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
work=$here/work

skip_build=0
in_process=0
check=0
for arg in "$@"; do
    case $arg in
        --skip-build) skip_build=1 ;;
        --in-process) in_process=1 ;;
        --check) check=1 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "replay.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
    esac
done

base_port=${BENCH_REPLAY_PORT:-10040}
parallel=${BENCH_PARALLEL:-20}
messages=${BENCH_MESSAGES:-20000}
msg_size=${BENCH_MSG_SIZE:-1000}
runs=${BENCH_RUNS:-5}
startup_runs=${BENCH_STARTUP_RUNS:-20}
replay_stderr=${BENCH_REPLAY_STDERR:-file}
smtptape=${BENCH_SMTPTAPE:-$root/.build/release/smtptape}
[[ -n ${BENCH_SMTPTAPE:-} ]] && skip_build=1
scenario=$here/smtp-source.yaml
gnu_time=/usr/bin/time
for v in base_port parallel messages msg_size runs startup_runs; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "replay.sh: $v must be a positive integer (got '${!v}')" >&2; exit 2; }
done
[[ $replay_stderr == file || $replay_stderr == null ]] || { echo "replay.sh: BENCH_REPLAY_STDERR is file or null" >&2; exit 2; }

# --- prerequisites ---------------------------------------------------------------------------
# Postfix installs its test tools in /usr/sbin, which is often not on a user's PATH.
find_tool() {
    local t
    t=$(command -v "$1" 2>/dev/null) || t=
    [[ -z $t ]] && for d in /usr/sbin /usr/local/sbin /usr/lib/postfix /usr/libexec/postfix; do
        [[ -x $d/$1 ]] && { t=$d/$1; break; }
    done
    [[ -n $t ]] || { echo "replay.sh: $1 not found (Debian/Ubuntu: apt-get install $2)" >&2; return 1; }
    echo "$t"
}
sink=$(find_tool smtp-sink postfix)
source=$(find_tool smtp-source postfix)
if [[ ! -x $gnu_time ]] || ! "$gnu_time" --version 2>&1 | grep -q 'GNU'; then
    echo "replay.sh: $gnu_time must be GNU time (Debian/Ubuntu: apt-get install time)" >&2
    exit 1
fi
# The interpreter itself, not a wrapper (pyenv's shims are scripts that exec it), so that the
# pid started is the pid measured.
python=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) || { echo "replay.sh: python3 not found" >&2; exit 1; }
"$python" -c 'import aiosmtpd' 2>/dev/null || { echo "replay.sh: aiosmtpd not found (pip install aiosmtpd)" >&2; exit 1; }
[[ -r /proc/self/stat ]] || { echo "replay.sh: needs /proc (Linux)" >&2; exit 1; }
ticks=$(getconf CLK_TCK)

mkdir -p "$work"

# --- build -----------------------------------------------------------------------------------
if [[ $skip_build -eq 0 ]]; then
    echo "== swift build -c release --product smtptape"
    (cd "$root" && swift build -c release --product smtptape)
fi
if [[ ! -x $smtptape ]]; then
    echo "replay.sh: $smtptape does not exist; build it with" >&2
    echo "  (cd $root && swift build -c release --product smtptape)" >&2
    exit 1
fi
"$smtptape" check "$scenario" > /dev/null

# --- servers ---------------------------------------------------------------------------------
now() { echo "$EPOCHREALTIME"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# utime + stime of PID (all its threads), in seconds.
cpu_s() { awk -v hz="$ticks" '{ sub(/^.*\) /, ""); split($0, f, " "); printf "%.2f", (f[12] + f[13]) / hz }' "/proc/$1/stat"; }

server_pid=
# stop PID SIGNAL: send SIGNAL (0: none, it is ending by itself), give the process 10 s to exit,
# then SIGKILL; sets stop_rc to its exit status.
stop() {
    local pid=$1
    kill -"$2" "$pid" 2>/dev/null || true
    for _ in $(seq 1000); do kill -0 "$pid" 2>/dev/null || break; sleep 0.01; done
    kill -KILL "$pid" 2>/dev/null || true
    stop_rc=0
    wait "$pid" 2>/dev/null || stop_rc=$?
}
cleanup() {
    local rc=$?
    trap '' INT TERM
    # Only the server this script started, by pid.
    [[ -n $server_pid ]] && stop "$server_pid" KILL
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

keys=(replay sink aiosmtpd)
declare -A label port
label[replay]="smtptape replay"
label[sink]="smtp-sink (Postfix)"
label[aiosmtpd]="aiosmtpd (Sink handler)"
port[replay]=$base_port
port[sink]=$((base_port + 1))
port[aiosmtpd]=$((base_port + 2))
for k in "${keys[@]}"; do
    if port_open "${port[$k]}"; then
        echo "replay.sh: something already listens on 127.0.0.1:${port[$k]}; stop it or set BENCH_REPLAY_PORT" >&2
        exit 1
    fi
done
sink_args=(-h sink.example)
[[ $(id -u) -eq 0 ]] && sink_args+=(-u nobody)   # smtp-sink refuses to run as root without -u

# start KEY RUN: starts the server, returns once it listens (sets server_pid).
start() {
    local key=$1 run=$2 out
    case $key in
        replay)
            out=$work/replay.stdout
            : > "$out"
            local err=/dev/null
            [[ $replay_stderr == file ]] && err=$work/replay-$run.stderr
            # One session more than the load: the extra one, sent after the CPU time is read, ends it.
            "$smtptape" replay "$scenario" --listen "127.0.0.1:${port[replay]}" --sessions $((messages + 1)) > "$out" 2> "$err" &
            server_pid=$!
            # The address line comes once it listens; a probe connect would be a session.
            for _ in $(seq 1000); do [[ -s $out ]] && break; kill -0 "$server_pid" 2>/dev/null || break; sleep 0.01; done
            [[ -s $out ]] || { echo "replay.sh: smtptape replay did not start" >&2; exit 1; }
            return 0 ;;
        sink)
            "$sink" "${sink_args[@]}" "127.0.0.1:${port[sink]}" 1024 2> "$work/replay-sink.stderr" &
            server_pid=$! ;;
        aiosmtpd)
            "$python" -m aiosmtpd -n -l "127.0.0.1:${port[aiosmtpd]}" -c aiosmtpd.handlers.Sink 2> "$work/replay-aiosmtpd.stderr" &
            server_pid=$! ;;
    esac
    for _ in $(seq 1000); do port_open "${port[$key]}" && return 0; kill -0 "$server_pid" 2>/dev/null || break; sleep 0.01; done
    echo "replay.sh: ${label[$key]} is not listening on 127.0.0.1:${port[$key]}" >&2
    exit 1
}

# --- throughput ------------------------------------------------------------------------------
declare -A rates cpus client_cpus
source_cmd=("$source" -s "$parallel" -m "$messages" -l "$msg_size" -M client.example)
echo "== smtp-source -s $parallel -m $messages -l $msg_size against each server, $runs runs"
for ((run = 1; run <= runs; run++)); do
    for key in "${keys[@]}"; do
        start "$key" "$run"
        c0=$(cpu_s "$server_pid")
        t0=$(now)
        if ! "$gnu_time" -f '%U %S' -o "$work/replay-source.time" "${source_cmd[@]}" "127.0.0.1:${port[$key]}" 2> "$work/replay-source.stderr"; then
            echo "replay.sh: smtp-source against ${label[$key]} failed:" >&2
            tail -n 5 "$work/replay-source.stderr" >&2
            exit 1
        fi
        t1=$(now)
        c1=$(cpu_s "$server_pid")
        pid=$server_pid; server_pid=
        if [[ $key == replay ]]; then
            # The last session (--sessions): replay exits, with status 0 only if every verdict passed.
            "$source" -m 1 -M client.example "127.0.0.1:${port[replay]}" 2>> "$work/replay-source.stderr" || true
            stop "$pid" 0
            [[ $stop_rc -eq 0 ]] || { echo "replay.sh: smtptape replay exited with $stop_rc (a verdict failed?)" >&2; exit 1; }
            if [[ $replay_stderr == file ]]; then
                err=$work/replay-$run.stderr
                passed=$(grep -c '): passed, ' "$err" || true)
                grep -q "^smtptape: $((messages + 1)) sessions, $((messages + 1)) passed, 0 failed$" "$err" && [[ $passed -eq $((messages + 1)) ]] || {
                    echo "replay.sh: expected $((messages + 1)) passed verdicts in $err, found $passed" >&2; exit 1; }
            fi
        else
            stop "$pid" TERM
        fi
        read -r cu cs < "$work/replay-source.time"
        wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
        rate=$(awk -v m="$messages" -v w="$wall" 'BEGIN { printf "%.0f", m / w }')
        cpu=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }')
        client=$(awk -v u="$cu" -v s="$cs" 'BEGIN { printf "%.2f", u + s }')
        printf '   run %d, %-24s %6.3f s  %6d msgs/s  server CPU %5.2f s  smtp-source CPU %5.2f s\n' "$run" "${label[$key]}:" "$wall" "$rate" "$cpu" "$client"
        rates[$key]+="$rate "
        cpus[$key]+="$cpu "
        client_cpus[$key]+="$client "
    done
done

median() { printf '%s\n' $1 | sort -g | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m }'; }
range() { printf '%s\n' $1 | sort -g | awk 'NR == 1 { a = $1 } { b = $1 } END { print a " to " b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
declare -A med_rate med_cpu med_client
for k in "${keys[@]}"; do
    med_rate[$k]=$(median "${rates[$k]}")
    med_cpu[$k]=$(median "${cpus[$k]}")
    med_client[$k]=$(median "${client_cpus[$k]}")
done

# --- start-up --------------------------------------------------------------------------------
echo "== start-up: launching smtptape replay to serving, $startup_runs runs"
"$python" "$here/startup.py" "$startup_runs" "$smtptape" "$scenario" | tee "$work/replay-startup.txt" | sed 's/^/   /'
startup_ms() { awk -v n="$1" '$1 == "median" && $2 == n { print $3 }' "$work/replay-startup.txt"; }
cli_address=$(startup_ms address)
cli_connect=$(startup_ms connect)
cli_greeting=$(startup_ms greeting)

inproc_line=
if [[ $in_process -eq 1 ]]; then
    echo "== start-up in-process: withReplayServer to serving (debug test build)"
    (cd "$root" && swift build --build-tests > "$work/replay-inprocess.build.log" 2>&1) || {
        echo "replay.sh: swift build --build-tests failed; see $work/replay-inprocess.build.log" >&2; exit 1; }
    (cd "$root" && SMTPTAPE_BENCH_STARTUP=1 swift test --skip-build --filter StartupBenchmark 2>&1) > "$work/replay-inprocess.log" || {
        echo "replay.sh: the StartupBenchmark test failed; see $work/replay-inprocess.log" >&2; exit 1; }
    grep 'replay start-up (in-process)' "$work/replay-inprocess.log" | sed 's/^/   /'
    inproc_line=$(grep 'replay start-up (in-process): median' "$work/replay-inprocess.log" || true)
    inproc_connect=$(sed -n 's/.*median connect \([0-9.]*\) ms.*/\1/p' <<< "$inproc_line")
    inproc_first=$(grep 'replay start-up (in-process): first' "$work/replay-inprocess.log" | sed -n 's/.*first connect \([0-9.]*\) ms.*/\1/p')
fi

# --- report ----------------------------------------------------------------------------------
revision=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null) ]] && revision+=" (with uncommitted changes)"
[[ -n ${BENCH_SMTPTAPE:-} ]] && revision+=" (but the binary timed is BENCH_SMTPTAPE=$BENCH_SMTPTAPE)"
swift_version=$(swift --version 2>/dev/null | grep -oE 'Swift version [0-9.]+' | head -1 || true)
postfix_version=$("$(dirname "$sink")/postconf" -d -h mail_version 2>/dev/null || echo "?")
aiosmtpd_version=$("$python" -c 'import aiosmtpd; print(aiosmtpd.__version__)')
python_version=$("$python" -c 'import platform; print(platform.python_version())')
stderr_note="verdicts to a file (bench/work/replay-N.stderr)"
[[ $replay_stderr == null ]] && stderr_note="verdicts to /dev/null"

report=$work/replay-results.txt
{
    echo "smtptape replay benchmark run of $(date -u '+%Y-%m-%d %H:%M UTC'), smtptape $revision"
    echo "host: $(uname -sr), $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)); ${swift_version:-Swift ?} release build, Postfix $postfix_version, aiosmtpd $aiosmtpd_version on Python $python_version"
    echo "load: \`smtp-source -s $parallel -m $messages -l $msg_size -M client.example\`, one message per connection (HELO, MAIL, RCPT, DATA, message, QUIT); client and server share the CPUs"
    echo "runs: $runs of each server, taking turns; figures are medians, with the range; replay's $stderr_note"
    echo
    echo "| server | msgs/s | msgs/s range | server CPU s | CPU us/msg | smtp-source CPU s | replay/this msgs/s |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for k in "${keys[@]}"; do
        echo "| ${label[$k]} | ${med_rate[$k]} | $(range "${rates[$k]}") | ${med_cpu[$k]} | $(awk -v c="${med_cpu[$k]}" -v m="$messages" 'BEGIN { printf "%.0f", c / m * 1e6 }') | ${med_client[$k]} | $(ratio "${med_rate[replay]}" "${med_rate[$k]}") |"
    done
    echo
    echo "start-up of \`smtptape replay bench/smtp-source.yaml --listen 127.0.0.1:0 --sessions 1\`, launch to: address line ${cli_address} ms, connect ${cli_connect} ms, 220 greeting ${cli_greeting} ms (medians of $startup_runs)"
    if [[ -n $inproc_line ]]; then
        echo "start-up in-process (withReplayServer, debug test build), call to connect: median ${inproc_connect} ms; the process's first server ${inproc_first} ms (it also starts the event-loop threads)"
    fi
    echo
    echo "targets (bench/README.md), on the medians:"
    target() { # description value op limit unit
        local verdict=missed
        awk -v v="$2" -v l="$4" -v op="$3" 'BEGIN { exit !((op == ">=" && v >= l) || (op == "<" && v < l)) }' && verdict=met
        echo "- $1: $2 $5, want $3 $4 $5: $verdict"
        [[ $verdict == met ]]
    }
    missed=0
    target "replay vs smtp-sink (msgs/s ratio)" "$(ratio "${med_rate[replay]}" "${med_rate[sink]}")" ">=" 1.0 x || missed=1
    target "replay vs aiosmtpd (msgs/s ratio)" "$(ratio "${med_rate[replay]}" "${med_rate[aiosmtpd]}")" ">=" 5 x || missed=1
    target "CLI start-up, launch to connect" "$cli_connect" "<" 100 ms || missed=1
    if [[ -n $inproc_line ]]; then
        target "in-process start-up, call to connect" "$inproc_connect" "<" 10 ms || missed=1
    else
        echo "- in-process start-up: not measured (run with --in-process)"
    fi
    echo
    echo "runs (msgs/s; server CPU s):"
    for k in "${keys[@]}"; do echo "- ${label[$k]}: $(echo ${rates[$k]}); $(echo ${cpus[$k]})"; done
    echo
    echo "commands:"
    echo "- load: \`${source_cmd[*]##*/} 127.0.0.1:PORT\`"
    echo "- ${label[replay]}: \`smtptape replay bench/smtp-source.yaml --listen 127.0.0.1:${port[replay]} --sessions $((messages + 1))\` (the last session, after the CPU time is read, ends it)"
    echo "- ${label[sink]}: \`smtp-sink ${sink_args[*]} 127.0.0.1:${port[sink]} 1024\`"
    echo "- ${label[aiosmtpd]}: \`python3 -m aiosmtpd -n -l 127.0.0.1:${port[aiosmtpd]} -c aiosmtpd.handlers.Sink\`"
} > "$report.tmp"   # a { } group runs in this shell, so $missed survives
mv "$report.tmp" "$report"

echo
cat "$report"
echo
echo "(written to $report)"
[[ $check -eq 1 && $missed -ne 0 ]] && exit 3
exit 0
