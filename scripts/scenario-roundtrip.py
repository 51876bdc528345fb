#!/usr/bin/env python3
"""Extract scenarios from every capture in a folder and check each one.

Usage:
    scripts/scenario-roundtrip.py FOLDER [--smtptape PATH]

For every capture under FOLDER (*.pcap, *.pcapng, *.cap, recursively) this runs
`smtptape extract` into a temporary folder and then, for the scenarios written:

  - `smtptape check`: the scenario has no problem;
  - `smtptape format --check`: reading it and writing it again gives the same bytes;
  - transcripts: `smtptape transcript --data full` of the capture and of its scenarios show
    the same command lines, reply lines and message data, leaving out flag annotations such
    as [unsolicited] (each kind compared as a list;
    pipelined commands come before their replies in a capture, step by step in a scenario).
    Sessions whose scenario says it used a stand-in greeting are allowed that one line.

One row per capture, then a tally. Exit 0 unless the tool itself is missing.
"""
import os, re, subprocess, sys, tempfile

def find_tool(argv):
    if "--smtptape" in argv:
        return argv[argv.index("--smtptape") + 1]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for build in ("release", "debug"):
        path = os.path.join(root, ".build", build, "smtptape")
        if os.path.exists(path):
            return path
    sys.exit("smtptape is not built (swift build -c release)")

LINE = re.compile(r"^\s*\+[0-9.]+\s+([CSD]: .*?)(?:  \[[a-z_, ]+\])?$")

def dialogue(text):
    lines = [m.group(1) for m in map(LINE.match, text.splitlines()) if m]
    return {tag: [l for l in lines if l.startswith(tag)] for tag in ("C: ", "S: ", "D: ")}

def run(tool, args):
    return subprocess.run([tool] + args, capture_output=True, text=True, errors="replace")

def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    folder, tool = sys.argv[1], find_tool(sys.argv)
    captures = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs
                      if f.endswith((".pcap", ".pcapng", ".cap")))
    tally = {"scenarios": 0, "valid": 0, "canonical": 0, "transcripts agree": 0, "transcripts differ": 0, "captures without SMTP": 0}
    for capture in captures:
        name = os.path.relpath(capture, folder)
        with tempfile.TemporaryDirectory() as out:
            extract = run(tool, ["extract", capture, "-o", out])
            files = [l for l in extract.stdout.splitlines() if l]
            if not files:
                tally["captures without SMTP"] += 1
                continue
            tally["scenarios"] += len(files)
            valid = sum(run(tool, ["check", f]).returncode == 0 for f in files)
            canonical = sum(run(tool, ["format", "--check", f]).returncode == 0 for f in files)
            tally["valid"] += valid
            tally["canonical"] += canonical
            stand_ins = sum("stand-in 220 greeting" in open(f, encoding="utf-8").read() for f in files)
            want = dialogue(run(tool, ["transcript", "--data", "full", capture]).stdout)
            got = dialogue(run(tool, ["transcript", "--data", "full"] + files).stdout)
            if stand_ins:
                got["S: "] = [l for l in got["S: "] if l != "S: 220 smtptape: greeting not captured"]
            agree = all(sorted(want[t]) == sorted(got[t]) for t in want)
            tally["transcripts agree" if agree else "transcripts differ"] += 1
            diff = ""
            if not agree:
                for t in want:
                    a, b = sorted(want[t]), sorted(got[t])
                    if a != b:
                        missing = [l for l in a if l not in b][:1]
                        extra = [l for l in b if l not in a][:1]
                        diff = f" ({t.strip()} lines: capture {len(a)}, scenarios {len(b)}; first only in capture {missing}, only in scenarios {extra})"
                        break
            print(f"{name}: {len(files)} scenario(s), {valid} valid, {canonical} canonical, transcripts {'agree' if agree else 'differ'}{diff}")
    print("tally: " + ", ".join(f"{v} {k}" for k, v in tally.items()))

main()
