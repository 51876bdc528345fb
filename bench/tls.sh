#!/usr/bin/env bash
# TLS decryption benchmark: `smtptape transcript --keylog` on a capture of STARTTLS sessions
# carrying large messages, against tshark decrypting the same file with the same key log, and
# against `smtptape transcript` of the same traffic sent in plaintext.
#
# Usage: bench/tls.sh [--skip-build] [--check]
#   --skip-build  do not run `swift build -c release --product smtptape`; use the existing binary
#   --check       exit 3 if a target in bench/README.md (TLS decryption) is missed
# Environment (defaults in brackets):
#   BENCH_RUNS         runs of every command, tshark included; medians are compared [5]
#   BENCH_SMTPTAPE     smtptape binary to time [.build/release/smtptape, built by this script];
#                      when set, nothing is built and the binary must exist
#   BENCH_TLS_PORT, BENCH_TLS_PLAIN_PORT   the captures' ports [12587, 12525]
#   BENCH_TLS_PREFIX   the captures' names [bench/work/tls]: PREFIX.pcap, PREFIX.keys,
#                      PREFIX-plain.pcap, PREFIX-capture.txt; results go to PREFIX-results.txt
#   BENCH_TLS_SESSIONS, BENCH_TLS_MESSAGES, BENCH_TLS_MSG_SIZE, BENCH_TLS_PARALLEL,
#   BENCH_TLS_VERSION, BENCH_TLS_MTU, BENCH_TCPDUMP_BUFFER_KIB
#                      the shape of the captures, used only when bench/make-tls-capture.sh makes
#                      them (when one of the three files is missing; run make-tls-capture.sh
#                      --force to remake them); see its --help
# Timed, each BENCH_RUNS times, output to /dev/null (tshark's to PREFIX-tshark.out):
#   keylog     smtptape transcript --keylog tls.keys --port 12587 --data none tls.pcap
#   plaintext  smtptape transcript --port 12525 --data none tls-plain.pcap
#   tshark     tshark -r tls.pcap -o tls.keylog_file:tls.keys -d tcp.port==12587,smtp -Y smtp
#              -T fields -e tcp.stream -e smtp.req.command -e smtp.response.code
# Checked, untimed: `--format json` of the keylog run and of the plaintext run give the same
# sessions (by sender), messages, message bytes, commands from MAIL on, last reply, and the same
# SHA-256 of every session's message data; tshark's output has a MAIL after STARTTLS in every
# session (so it did decrypt). A difference makes the script exit 1.
# Writes the table to PREFIX-results.txt (bench/work/tls-results.txt); each command's stderr goes
# to PREFIX-*.stderr.
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
        *) echo "tls.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
    esac
done

runs=${BENCH_RUNS:-5}
smtptape=${BENCH_SMTPTAPE:-$root/.build/release/smtptape}
[[ -n ${BENCH_SMTPTAPE:-} ]] && skip_build=1
tls_port=${BENCH_TLS_PORT:-12587}
plain_port=${BENCH_TLS_PLAIN_PORT:-12525}
prefix=${BENCH_TLS_PREFIX:-$work/tls}
capture=$prefix.pcap
keylog=$prefix.keys
plain=$prefix-plain.pcap
info=$prefix-capture.txt
gnu_time=/usr/bin/time
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "tls.sh: BENCH_RUNS must be a positive integer" >&2; exit 2; }

# Targets (bench/README.md, TLS decryption).
want_tshark=20      # tshark/keylog >= 20
want_plain=2        # keylog/plaintext <= 2
want_rss_ratio=1.5  # keylog peak RSS <= 1.5 x plaintext peak RSS
want_rss_mib=100    # keylog peak RSS < 100 MiB, the bound bench/run.sh sets for plaintext

# --- prerequisites ---------------------------------------------------------------------------
if [[ ! -x $gnu_time ]] || ! "$gnu_time" --version 2>&1 | grep -q 'GNU'; then
    echo "tls.sh: GNU time is missing: $gnu_time must be GNU time (apt-get install time)" >&2
    exit 1
fi
command -v tshark >/dev/null || { echo "tls.sh: tshark not found (Debian/Ubuntu: apt-get install tshark)" >&2; exit 1; }
mkdir -p "$work"

# --- build -----------------------------------------------------------------------------------
if [[ $skip_build -eq 0 ]]; then
    echo "== swift build -c release --product smtptape"
    (cd "$root" && swift build -c release --product smtptape)
fi
if [[ ! -x $smtptape ]]; then
    echo "tls.sh: $smtptape does not exist; build it with" >&2
    echo "  (cd $root && swift build -c release --product smtptape)" >&2
    echo "or run without --skip-build and without BENCH_SMTPTAPE" >&2
    exit 1
fi
has_keylog=0
"$smtptape" transcript --help 2>/dev/null | grep -q -- '--keylog' && has_keylog=1

echo "== captures"
"$here/make-tls-capture.sh"

# Read once so that every timed run reads from the page cache.
cat "$capture" "$plain" "$keylog" > /dev/null

# --- measurement -----------------------------------------------------------------------------
# measure KEY STDOUT CMD... (bench/lib.sh): stderr to $prefix-KEY.stderr.
measure_files=$prefix-
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

keys=(keylog plain tshark)
declare -A label cmdline file
label[keylog]="smtptape --keylog (STARTTLS)"
label[plain]="smtptape, plaintext"
label[tshark]="tshark decrypting (SMTP fields)"
file[keylog]=$capture
file[plain]=$plain
file[tshark]=$capture

keylog_cmd=("$smtptape" transcript --keylog "$keylog" --port "$tls_port" --data none "$capture")
plain_cmd=("$smtptape" transcript --port "$plain_port" --data none "$plain")
tshark_cmd=(tshark -r "$capture" -o "tls.keylog_file:$keylog" -d "tcp.port==$tls_port,smtp" -Y smtp
            -T fields -e tcp.stream -e smtp.req.command -e smtp.response.code)
cmdline[keylog]="${keylog_cmd[*]} > /dev/null"
cmdline[plain]="${plain_cmd[*]} > /dev/null"
cmdline[tshark]="${tshark_cmd[*]} > $prefix-tshark.out"

if [[ $has_keylog -eq 1 ]]; then
    echo "== ${label[keylog]} (runs: $runs)"
    measure keylog /dev/null "${keylog_cmd[@]}"
else
    status[keylog]="not run: $smtptape has no --keylog"
    times_s[keylog]=
    echo "== ${label[keylog]}: NOT RUN, $smtptape transcript has no --keylog" >&2
fi
echo "== ${label[plain]} (runs: $runs)"
measure plain /dev/null "${plain_cmd[@]}"
echo "== ${label[tshark]} (runs: $runs)"
measure tshark "$prefix-tshark.out" "${tshark_cmd[@]}"


# --- correctness -----------------------------------------------------------------------------
expected() { awk -v k="$1:" '$1 == k { print $2 }' "$info" 2>/dev/null; }
exp_sessions=$(expected sessions)
exp_messages=$(expected messages)
exp_bytes=$(expected message_bytes)

# tshark: every TCP stream needs a MAIL command after its STARTTLS, else it did not decrypt.
tshark_check=
if ok tshark; then
    tshark_streams=$(awk -F'\t' 'toupper($2) == "STAR" || toupper($2) == "STARTTLS" { tls[$1] = 1 }
                                 toupper($2) == "MAIL" && tls[$1] { n[$1] = 1 }
                                 END { c = 0; for (s in n) c++; print c }' "$prefix-tshark.out")
    if [[ -n $exp_sessions && $tshark_streams -ne $exp_sessions ]]; then
        tshark_check="FAILED: tshark decrypted a MAIL after STARTTLS in $tshark_streams of $exp_sessions sessions ($prefix-tshark.out)"
    else
        tshark_check="tshark decrypted: a MAIL after STARTTLS in $tshark_streams sessions"
    fi
    echo "== $tshark_check"
fi

# The same sessions from --keylog and from plaintext, from --format json (untimed).
summarize() { # KEY CMD...: one JSON summary of the sessions in $prefix-KEY.summary.json
    local key=$1; shift
    "$@" --format json 2> "$prefix-$key-json.stderr" | python3 -c '
import base64, hashlib, json, sys
sessions = {}
for line in sys.stdin:
    if "\"type\":\"session_start\"" in line or "\"type\":\"data\"" in line or "\"type\":\"message_end\"" in line \
            or "\"type\":\"command\"" in line or "\"type\":\"session_end\"" in line:
        e = json.loads(line)
        s = sessions.setdefault(e["session"], {"sha": hashlib.sha256(), "commands": [], "mail": False})
        t = e["type"]
        if t in ("data", "message_end"):
            s["sha"].update(base64.b64decode(e["raw"]))
        elif t == "command":
            s["mail"] = s["mail"] or e.get("verb") == "MAIL"
            if s["mail"]:
                s["commands"].append(e.get("verb"))
        elif t == "session_end":
            s["end"] = e
out = []
for n, s in sorted(sessions.items()):
    e = s.get("end", {})
    out.append({"sender": [m["address"] for m in e.get("mail_from", [])],
                "rcpt": [r["address"] for r in e.get("rcpt_to", [])],
                "messages": e.get("messages"), "message_bytes": e.get("message_bytes"),
                "commands": s["commands"], "last_reply": e.get("last_reply"),
                "gap_bytes": e.get("gap_bytes"), "sha256": s["sha"].hexdigest(),
                "tls": e.get("tls"), "tls_state": e.get("tls_state")})
json.dump(out, sys.stdout)
' > "$prefix-$key.summary.json"
    local rc=("${PIPESTATUS[@]}")
    [[ ${rc[0]} -eq 0 && ${rc[1]} -eq 0 ]]
}
compare_check=
compare_ok=0
if ok plain && ok keylog; then
    echo "== correctness: --format json of both, compared"
    if ! summarize plain "${plain_cmd[@]}"; then
        compare_check="FAILED: the plaintext --format json run failed ($prefix-plain-json.stderr)"
    elif ! summarize keylog "${keylog_cmd[@]}"; then
        compare_check="FAILED: the --keylog --format json run failed: $(tail -n 3 "$prefix-keylog-json.stderr" | tr '\n' ' ')"
    else
        compare_check=$(python3 - "$prefix-plain.summary.json" "$prefix-keylog.summary.json" \
                        "${exp_sessions:-}" "${exp_messages:-}" "${exp_bytes:-}" <<'PY'
import collections, json, sys
plain, keylog = (json.load(open(p)) for p in sys.argv[1:3])
exp = [int(x) if x else None for x in sys.argv[3:6]]
def totals(ss):
    return (len(ss), sum(s["messages"] or 0 for s in ss), sum(s["message_bytes"] or 0 for s in ss))
problems = []
tp, tk = totals(plain), totals(keylog)
names = ("sessions", "messages", "message bytes")
for name, p, k, e in zip(names, tp, tk, exp):
    if p != k:
        problems.append(f"{name}: --keylog {k}, plaintext {p}")
    if e is not None and p != e:
        problems.append(f"{name}: plaintext {p}, the capture was made with {e}")
fields = ("rcpt", "messages", "message_bytes", "commands", "last_reply", "gap_bytes", "sha256")
def by_sender(ss):
    return {tuple(s["sender"]): s for s in ss}
bp, bk = by_sender(plain), by_sender(keylog)
if len(bp) != len(plain) or len(bk) != len(keylog):
    problems.append("senders are not unique per session")
for sender in sorted(set(bp) | set(bk)):
    p, k = bp.get(sender), bk.get(sender)
    if p is None or k is None:
        problems.append(f"session from {list(sender) or 'nobody'}: only in {'--keylog' if p is None else 'plaintext'}")
        continue
    for f in fields:
        if p[f] != k[f]:
            problems.append(f"session from {sender[0] if sender else '?'}: {f}: --keylog {k[f]}, plaintext {p[f]}")
states = collections.Counter(f"{s['tls']}/{s['tls_state']}" for s in keylog)
if problems:
    print("FAILED: --keylog and plaintext differ: " + "; ".join(problems[:8])
          + (f"; and {len(problems) - 8} more" if len(problems) > 8 else ""))
else:
    print(f"--keylog equals plaintext: {tk[0]} sessions, {tk[1]} messages, {tk[2]} message bytes, "
          f"the same commands from MAIL on, last replies, gaps and SHA-256 of each session's message data "
          f"(--keylog sessions' tls/tls_state: {', '.join(f'{k} x{v}' for k, v in sorted(states.items()))})")
PY
)
        [[ $compare_check == FAILED* ]] || compare_ok=1
    fi
    echo "   $compare_check"
else
    compare_check="not checked: a smtptape run failed or did not run"
fi

# --- report ----------------------------------------------------------------------------------
revision=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null) ]] && revision+=" (with uncommitted changes)"
if [[ -n ${BENCH_SMTPTAPE:-} ]]; then  # not built here: say which binary, the checkout may differ
    revision="binary $smtptape of $(date -u -r "$smtptape" '+%Y-%m-%d %H:%M UTC'), checkout at $revision"
fi
tshark_version=$(tshark --version 2>/dev/null | head -1 | awk '{ print $3 }')
swift_version=$(swift --version 2>/dev/null | grep -oE 'Swift version [0-9.]+' | head -1 || true)
mbs() { awk -v b="$(stat -c %s "$1")" -v s="$2" 'BEGIN { if (s > 0) printf "%.0f", b / 1e6 / s; else print "n/a" }'; }
size_line() {
    awk -v s="$(stat -c %s "$1")" -v n="$2" 'BEGIN { printf "%.1f MB (%d bytes), %s packets", s / 1e6, s, n }'
}

report=$prefix-results.txt
{
    echo "smtptape TLS decryption benchmark run of $(date -u '+%Y-%m-%d %H:%M UTC'), smtptape $revision"
    echo "host: $(uname -sr), $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)); ${swift_version:-Swift ?} release build, TShark ${tshark_version:-?}"
    if [[ -s $info ]]; then
        echo "captures ($(grep '^settings:' "$info" | cut -d' ' -f2-)): $(expected sessions) sessions, $(expected messages) messages, $(expected message_bytes) message bytes each; $(grep '^tls:' "$info" | cut -d' ' -f2-)"
        echo "- $(basename "$capture"): $(size_line "$capture" "$(expected tls_packets)"); $(basename "$keylog"): $(expected keylog_lines) secrets"
        echo "- $(basename "$plain"): $(size_line "$plain" "$(expected plain_packets)")"
    else
        echo "captures: tls.pcap $(stat -c %s "$capture") bytes, tls-plain.pcap $(stat -c %s "$plain") bytes ($info is missing)"
    fi
    echo "runs: $runs of each command (tshark too), from the page cache; times are medians of the wall-clock times, with the fastest and slowest run; MB/s is the command's capture size over its median; peak RSS is the largest over the runs; ratios compare medians"
    echo
    echo "| command | median s | fastest to slowest s | MB/s | peak RSS MiB | tshark/this | this/plaintext |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for k in "${keys[@]}"; do
        if ok "$k"; then
            x_tshark=n/a; x_plain=n/a
            ok tshark && x_tshark=$(ratio "${median_s[tshark]}" "${median_s[$k]}")
            ok plain && x_plain=$(ratio "${median_s[$k]}" "${median_s[plain]}")
            echo "| ${label[$k]} | ${median_s[$k]} | ${min_s[$k]} to ${max_s[$k]} | $(mbs "${file[$k]}" "${median_s[$k]}") | $(mib "${peak_kib[$k]}") | $x_tshark | $x_plain |"
        else
            echo "| ${label[$k]} | ${status[$k]} | | | | | |"
        fi
    done
    echo
    echo "targets (bench/README.md, TLS decryption), on the medians:"
    target() { # description value op limit unit
        local verdict=missed
        awk -v v="$2" -v l="$4" -v op="$3" 'BEGIN { exit !((op == ">=" && v >= l) || (op == "<=" && v <= l) || (op == "<" && v < l)) }' && verdict=met
        echo "- $1: $2 $5, want $3 $4 $5: $verdict"
        [[ $verdict == met ]]
    }
    why() { local k; for k in "$@"; do ok "$k" || echo -n "${label[$k]}: ${status[$k]}; "; done | sed 's/; $//'; }
    missed=0
    if ok keylog && ok tshark; then target "\`--keylog\` vs tshark (tshark/keylog)" "$(ratio "${median_s[tshark]}" "${median_s[keylog]}")" ">=" "$want_tshark" x || missed=1
    else echo "- \`--keylog\` vs tshark: not evaluated ($(why keylog tshark))"; missed=1; fi
    if ok keylog && ok plain; then target "\`--keylog\` vs plaintext (keylog/plaintext)" "$(ratio "${median_s[keylog]}" "${median_s[plain]}")" "<=" "$want_plain" x || missed=1
    else echo "- \`--keylog\` vs plaintext: not evaluated ($(why keylog plain))"; missed=1; fi
    if ok keylog && ok plain; then
        target "\`--keylog\` peak RSS vs plaintext ($(mib "${peak_kib[keylog]}") / $(mib "${peak_kib[plain]}") MiB)" "$(ratio "${peak_kib[keylog]}" "${peak_kib[plain]}")" "<=" "$want_rss_ratio" x || missed=1
        target "\`--keylog\` peak RSS" "$(mib "${peak_kib[keylog]}")" "<" "$want_rss_mib" MiB || missed=1
    else echo "- \`--keylog\` peak RSS: not evaluated ($(why keylog plain))"; missed=1; fi
    echo
    echo "checks:"
    echo "- ${compare_check}"
    echo "- ${tshark_check:-tshark: not checked (it failed)}"
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
[[ $compare_ok -eq 1 && $tshark_check != FAILED* ]] || exit 1
[[ $check -eq 1 && $missed -ne 0 ]] && exit 3
exit 0
