# Shared by the benchmark scripts (bench/run.sh, bench/tls.sh): timing commands under GNU time,
# and the arithmetic of their reports. Source it after setting `runs` (runs per command),
# `gnu_time` (the GNU time binary) and `measure_files` (the prefix of the per-command files).

now() { if [[ -n ${EPOCHREALTIME:-} ]]; then echo "$EPOCHREALTIME"; else date +%s.%N; fi; }

# measure KEY STDOUT CMD...
# Runs CMD $runs times under GNU time with stdout to STDOUT and stderr to ${measure_files}KEY.stderr.
# Wall-clock time is taken around each run with microsecond resolution (GNU time's %e has only
# 10 ms). Sets times_s[KEY] (the run times, space-separated), median_s[KEY], min_s[KEY],
# max_s[KEY], peak_kib[KEY] (largest %M over the runs) and status[KEY] ("ok" or "failed (exit N)").
declare -A times_s median_s min_s max_s peak_kib status
measure() {
    local key=$1 stdout=$2; shift 2
    local tf=${measure_files}$key.time err=${measure_files}$key.stderr i t0 t1 rc e rss s
    times_s[$key]=
    peak_kib[$key]=0
    status[$key]=ok
    : > "$err"
    for ((i = 1; i <= runs; i++)); do
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
        times_s[$key]+="$s "
        if ((rss > peak_kib[$key])); then peak_kib[$key]=$rss; fi
    done
    read -r median_s[$key] min_s[$key] max_s[$key] < <(printf '%s\n' ${times_s[$key]} | sort -g | awk '
        { v[NR] = $1 }
        END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf "%.3f %.3f %.3f\n", m, v[1], v[NR] }')
    echo "   median ${median_s[$key]} s (${min_s[$key]} to ${max_s[$key]} s)"
}

ok() { [[ ${status[$1]} == ok ]]; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
