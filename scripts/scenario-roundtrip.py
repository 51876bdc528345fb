#!/usr/bin/env python3
"""Extract scenarios from every capture in a folder and check each one.

Usage:
    scripts/scenario-roundtrip.py FOLDER [--smtptape PATH] [--quiet]

The binary is --smtptape PATH, else $SMTPTAPE, else .build/release/smtptape, else
.build/debug/smtptape in the repository; build it first with
`swift build -c release --product smtptape` (the script stops with that instruction
when there is none).

For every capture under FOLDER (*.pcap, *.pcapng, *.cap, recursively) this runs
`smtptape extract` into a temporary folder and then, for each scenario written:

  - `smtptape check`: the scenario has no problem;
  - `smtptape format --check`: reading it and writing it again gives the same bytes;
  - transcripts: `smtptape transcript --data full` of the capture (that session) and of the
    scenario show the same command lines, reply lines and message data, compared in order, kind
    by kind (pipelined commands come before their replies in a capture and step by step in a
    scenario, so C:, S: and D: lines are compared as three sequences). A complete scenario must
    show exactly the capture's lines. A scenario marked `incomplete` holds the dialogue up to the
    first point the capture cannot vouch for: its lines must appear in the capture's, in the same
    order (it may leave out replies to commands sent before the capture began). A scenario that
    says it uses a stand-in greeting is allowed that one line.

One row per capture, then a tally. The exit status is 1 when any scenario is invalid, not
canonical, or disagrees with its capture; 2 when smtptape cannot be run.
"""
import os, re, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_HINT = (f"run `swift build -c release --product smtptape` in {ROOT} "
              "(or pass --smtptape PATH, or set SMTPTAPE)")

def find_tool(argv):
    """--smtptape PATH, else $SMTPTAPE, else the repository's release build, else its debug build."""
    if "--smtptape" in argv:
        index = argv.index("--smtptape") + 1
        if index >= len(argv):
            sys.exit(__doc__)
        path = argv[index]
    elif os.environ.get("SMTPTAPE"):
        path = os.environ["SMTPTAPE"]
    else:
        path = next((p for p in (os.path.join(ROOT, ".build", b, "smtptape") for b in ("release", "debug"))
                     if os.path.exists(p)), None)
        if path is None:
            print(f"scenario-roundtrip: smtptape is not built; {BUILD_HINT}", file=sys.stderr)
            sys.exit(2)
    if not os.access(path, os.X_OK):
        print(f"scenario-roundtrip: smtptape binary {path} not found; {BUILD_HINT}", file=sys.stderr)
        sys.exit(2)
    return path

LINE = re.compile(r"^\s*\+[0-9.]+\s+([CSD]: .*?)(?:  \[[a-z_, ]+\])?$")
HEADER = re.compile(r"^== session (\d+)")
STAND_IN = "S: 220 smtptape: greeting not captured"

def sessions_of(text):
    """{session number: [dialogue lines]} from a text transcript."""
    sessions, current = {}, None
    for line in text.splitlines():
        header = HEADER.match(line)
        if header:
            current = int(header.group(1))
            sessions.setdefault(current, [])
            continue
        match = LINE.match(line)
        if match and current is not None:
            sessions[current].append(match.group(1))
    return sessions

def by_kind(lines):
    return {tag: [l for l in lines if l.startswith(tag)] for tag in ("C: ", "S: ", "D: ")}

def is_subsequence(short, long):
    it = iter(long)
    return all(any(x == y for y in it) for x in short)

def run(tool, args):
    return subprocess.run([tool] + args, capture_output=True, text=True, errors="replace")

def compare(capture_lines, scenario_lines, incomplete, stand_in):
    """Why the two transcripts disagree, or None."""
    want, got = by_kind(capture_lines), by_kind(scenario_lines)
    if stand_in and got["S: "][:1] == [STAND_IN]:
        got["S: "] = got["S: "][1:]
    for tag in want:
        a, b = want[tag], got[tag]
        ok = is_subsequence(b, a) if incomplete else a == b
        if not ok:
            first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            return (f"{tag.strip()} lines: capture {len(a)}, scenario {len(b)}; first difference at "
                    f"{tag.strip()} line {first + 1}: capture {a[first:first + 1]}, scenario {b[first:first + 1]}")
    return None

def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    folder, tool = sys.argv[1], find_tool(sys.argv)
    if not os.path.isdir(folder):
        print(f"scenario-roundtrip: {folder} is not a folder", file=sys.stderr)
        sys.exit(2)
    quiet = "--quiet" in sys.argv
    captures = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs
                      if f.endswith((".pcap", ".pcapng", ".cap")))
    tally = {"scenarios": 0, "valid": 0, "canonical": 0, "transcripts agree": 0, "transcripts differ": 0,
             "incomplete": 0, "captures without SMTP": 0}
    failed = False
    for capture in captures:
        name = os.path.relpath(capture, folder)
        with tempfile.TemporaryDirectory() as out:
            extract = run(tool, ["extract", capture, "-o", out])
            # Messages over 1 MiB are written beside their scenarios (.eml): only scenarios here.
            files = [l for l in extract.stdout.splitlines() if l.endswith(".yaml")]
            if not files:
                tally["captures without SMTP"] += 1
                continue
            tally["scenarios"] += len(files)
            captured = sessions_of(run(tool, ["transcript", "--data", "full", capture]).stdout)
            problems = []
            for file in files:
                session = int(re.search(r"-session-(\d+)\.yaml$", file).group(1))
                text = open(file, encoding="utf-8").read()
                incomplete = "\n- incomplete:" in text or "\n  incomplete:" in text
                tally["incomplete"] += incomplete
                if run(tool, ["check", file]).returncode == 0:
                    tally["valid"] += 1
                else:
                    problems.append(f"session {session}: check fails")
                if run(tool, ["format", "--check", file]).returncode == 0:
                    tally["canonical"] += 1
                else:
                    problems.append(f"session {session}: not canonical")
                rendered = sessions_of(run(tool, ["transcript", "--data", "full", file]).stdout)
                why = compare(captured.get(session, []), next(iter(rendered.values()), []), incomplete,
                              "stand-in 220 greeting" in text)
                if why:
                    tally["transcripts differ"] += 1
                    problems.append(f"session {session}: transcripts differ ({why})")
                else:
                    tally["transcripts agree"] += 1
            failed = failed or bool(problems)
            if problems or not quiet:
                verdict = "; ".join(problems) if problems else "valid, canonical, transcripts agree"
                print(f"{name}: {len(files)} scenario(s): {verdict}")
    print("tally: " + ", ".join(f"{v} {k}" for k, v in tally.items()))
    sys.exit(1 if failed else 0)

main()
