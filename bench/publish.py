#!/usr/bin/env python3
"""Copy one benchmark run's figures into README.md and bench/README.md.

Usage: bench/publish.py [RESULTS]      (default: bench/work/results.txt, written by bench/run.sh)

Both files get the same block, between the lines
    <!-- bench-results: ... -->   and   <!-- /bench-results -->
(README.md in its Performance section, bench/README.md in its Results section): the run's
date, smtptape revision, host and capture, the table of medians, the targets met or missed
and every run's time. Everything else in the two files is left as it is, so the figures they
quote always come from a single run. `bench/run.sh --publish` runs this after measuring.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN = re.compile(r"^<!-- bench-results:.*-->$", re.M)
END = "<!-- /bench-results -->"


def block(results):
    lines = results.read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0].startswith("smtptape benchmark run of "):
        sys.exit(f"publish: {results} is not a results.txt written by bench/run.sh")
    out = [f"Figures from the {lines[0][len('smtptape benchmark '):]} "
           f"(`bench/run.sh`, copied from its `results.txt` by `bench/publish.py`):", ""]
    section = "header"
    for line in lines[1:]:
        if line.startswith("commands:"):
            break                       # bench/README.md lists the commands
        if section == "header" and not line:
            section = "body"
            out.append("")
            continue
        if section == "header":
            out.append(f"- {line}")
        elif line.endswith(":") and not line.startswith(("|", "-")):
            out.append(f"{line[0].upper()}{line[1:]}")   # "targets ...:", "run times (s):"
            out.append("")
        else:
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return out


def publish(path, text):
    content = path.read_text(encoding="utf-8")
    begin = BEGIN.search(content)
    end = content.find(END)
    if not begin or end < begin.end():
        sys.exit(f"publish: {path} has no '<!-- bench-results: ... -->' ... '{END}' block")
    marker = ("<!-- bench-results: written by bench/publish.py from one bench/run.sh run; "
              "do not edit by hand -->")
    new = content[:begin.start()] + marker + "\n" + "\n".join(text) + "\n" + content[end:]
    if new != content:
        path.write_text(new, encoding="utf-8")
        print(f"publish: updated {path.relative_to(ROOT)}")
    else:
        print(f"publish: {path.relative_to(ROOT)} already quotes this run")


def main():
    results = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "bench" / "work" / "results.txt"
    if not results.is_file():
        sys.exit(f"publish: {results} does not exist; run bench/run.sh first")
    text = block(results)
    for path in (ROOT / "README.md", ROOT / "bench" / "README.md"):
        publish(path, text)


if __name__ == "__main__":
    main()
