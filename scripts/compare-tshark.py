#!/usr/bin/env python3
"""Compare smtptape's reassembled TCP byte streams with tshark's "Follow TCP stream".

Usage:
    scripts/compare-tshark.py FOLDER [--smtptape PATH] [--verbose | --quiet] [--jobs N]
                              [--decode-as-smtp PORTS] [--tsv PATH]
                              [--expected TSV | --write-expected TSV]

Needs tshark and a built smtptape: `swift build -c release --product smtptape` in the
repository (or pass --smtptape PATH, or set SMTPTAPE); the script stops with that
instruction when there is no binary.

For every capture under FOLDER (recursively: *.pcap, *.pcapng, *.cap) this runs

    smtptape transcript --format json --show-secrets FILE

and concatenates, per session and per direction, the base64 `raw` fields of its
JSON Lines events (up to a `tls_start` whose state is `encrypted`), with `gap` events as holes. It then asks
tshark for the same connections (`tshark -q -z follow,tcp,raw,N`, all streams
of a file in one process) and compares the two byte streams of each direction.
The default binary is $SMTPTAPE, else .build/release/smtptape, else
.build/debug/smtptape, relative to the repository root.

Connections are matched by their (client ADDR:PORT, server ADDR:PORT) pair; a
pair reused several times in one capture is matched in order of appearance.
A TCP connection tshark sees but smtptape does not report is "missed" when
tshark's own SMTP dissector decodes any of its frames (on its ports 25 and 587,
and on the --decode-as-smtp ports, by default 2525, 8000, 8240 and 1080, the
non-standard ones in ../shared/captures, as `-d tcp.port==N,smtp`); missed rows
are always listed. The other connections are "not SMTP (skipped)", listed only
with --verbose.

Output, one row per connection smtptape reports (FILE is relative to FOLDER):

    FILE  client -> server  identical (N client bytes, M server bytes)
    FILE  client -> server  identical up to TLS (N/M bytes)
    FILE  client -> server  identical up to gap (N/M bytes): <which gap>
    FILE  client -> server  differs at client byte N (tshark has X bytes, smtptape Y)[: why]
    FILE  client -> server  not comparable: <why>
    FILE  A <-> B           missed: tshark decodes K frames as SMTP ...

  - "identical up to TLS": smtptape stopped at STARTTLS (or the connection is
    implicit TLS); the N client / M server plaintext bytes before it match the
    start of tshark's stream. When smtptape's session_end gives
    `encrypted_bytes`, the rest of tshark's stream must have that many bytes,
    otherwise the row says "differs" (only checked where neither tool saw gaps).
  - Gaps: tshark marks bytes lost from the capture with a
    "[K bytes missing in capture file]" record when the peer's ACK shows them;
    if both tools put a gap of the same size at the same place the comparison
    continues after it (and the row still says "identical", naming the gap).
    Where smtptape reports a gap and tshark's stream simply stops there (tshark
    keeps unacknowledged out-of-order data to itself), only the bytes before the
    gap are compared: "identical up to gap". Where tshark silently skips the
    missing bytes (payload cut by the snap length) and the rest matches, the row
    is "identical" with a note.
  - Byte offsets N are offsets in the TCP stream of that direction, counting
    gap bytes, as in smtptape's stream; X and Y are the whole lengths, gaps
    included (for TLS sessions Y is smtptape's plaintext part).
  - --verbose also shows the bytes around each difference.

A tally line ends the report.

Expected table (Tests/Corpus/expected-tshark.tsv, used by scripts/check-corpus.sh):
  --tsv PATH             writes this run's rows as a table: capture, connection,
                         category, client_bytes, server_bytes (bytes found equal,
                         for the three identical categories; - otherwise), note.
  --expected TSV         compares this run with the table and prints every row whose
                         category or byte counts changed, every row new or gone, and
                         every missed connection; exit 1 if there is any. A missed
                         connection is accepted only where the table marks it
                         "ignored" and gives the reason in its note (by hand).
  --write-expected TSV   regenerates the table from this run (deliberately, never in
                         CI), keeping the "ignored" rows and their reasons; exit 1 if
                         it had to write rows as "missed" (review them).
Without --expected or --write-expected the exit status is 0 whatever the
comparison finds; it is non-zero only when the script cannot run (no tshark,
no binary).
"""

import argparse
import base64
import binascii
import concurrent.futures
import ipaddress
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap")
DIRECTIONS = ("client", "server")
# tshark's follow tap inserts this (NUL-terminated) record where the peer's ACK
# shows that bytes were sent but the capture does not hold them.
MISSING_RECORD = re.compile(rb"\[(\d+) bytes missing in capture file\]\x00?")
HEX_LINE = re.compile(r"[0-9a-fA-F]+")
REPOSITORY = Path(__file__).resolve().parent.parent
BUILD_HINT = (f"run `swift build -c release --product smtptape` in {REPOSITORY} "
              f"(or pass --smtptape PATH, or set SMTPTAPE)")
# Ports where ../shared/captures (INVENTORY.md) has SMTP that tshark does not decode by
# itself: 2525 (a submission port), 8000 (a lone segment), 8240 (HTTP CONNECT tunnel) and
# 1080 (SOCKS5). tshark already decodes 25 and 587.
DEFAULT_SMTP_PORTS = "2525,8000,8240,1080"
STREAMS_PER_TSHARK = 1024  # follow taps per tshark run (keeps command lines short)
TIMEOUT_SECONDS = 600

# A direction's stream is a list of pieces: bytes (data) or int (a gap of that many bytes).


# --------------------------------------------------------------------------- helpers

def normalize_endpoint(text):
    """'1.2.3.4:25' or '[2001:db8::1]:25' -> ('1.2.3.4', 25), addresses in canonical form."""
    text = text.strip()
    if text.startswith("["):
        addr, _, port = text[1:].partition("]:")
    else:
        addr, _, port = text.rpartition(":")
    try:
        addr = ipaddress.ip_address(addr).compressed
    except ValueError:
        pass
    return (addr, int(port))


def format_endpoint(endpoint):
    addr, port = endpoint
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def normalize_pieces(pieces):
    """Merge adjacent data and adjacent gaps, drop empty pieces."""
    out = []
    for is_gap, run_ in itertools.groupby((p for p in pieces if p),
                                          key=lambda p: isinstance(p, int)):
        out.append(sum(run_) if is_gap else b"".join(run_))
    return out


def stream_length(pieces):
    return sum(p if isinstance(p, int) else len(p) for p in pieces)


def has_gap(pieces):
    return any(isinstance(p, int) for p in pieces)


def plural(count, noun):
    return f"{count} {noun}" + ("" if count == 1 else "s")


def first_mismatch(a, b):
    """Index of the first differing byte of two equally long byte strings, or None."""
    if a == b:
        return None
    lo, hi = 0, len(a)
    while hi - lo > 64:  # binary search on slices, then a short scan
        mid = (lo + hi) // 2
        if a[lo:mid] != b[lo:mid]:
            hi = mid
        else:
            lo = mid
    for i in range(lo, hi):
        if a[i] != b[i]:
            return i
    return None


def first_line(text):
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("Running as user"):
            return line
    return ""


def run(cmd):
    """Run a command; return (exit code or None, stdout bytes, stderr text)."""
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=TIMEOUT_SECONDS)
    except FileNotFoundError as err:
        return None, b"", str(err)
    except subprocess.TimeoutExpired:
        return None, b"", f"timed out after {TIMEOUT_SECONDS} s"
    return proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace")


# --------------------------------------------------------------------------- tshark

@dataclass
class TsharkStream:
    index: int
    nodes: list = field(default_factory=lambda: [None, None])     # endpoints of Node 0 / Node 1
    pieces: list = field(default_factory=lambda: [[], []])        # per node: data and gaps
    smtp_frames: int = 0                                          # frames tshark decodes as SMTP


def parse_follow_output(text):
    """Parse `tshark -q -z follow,tcp,raw,N ...` output into {index: TsharkStream}.

    Each block starts with "Filter: tcp.stream eq N" and "Node 0:"/"Node 1:" lines;
    each data record is one line of hex, tab-indented when sent by Node 1.
    """
    streams = {}
    current = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("Filter: tcp.stream eq "):
            current = TsharkStream(int(stripped.rsplit(" ", 1)[1]))
            streams[current.index] = current
        elif current is None:
            continue
        elif stripped.startswith(("Node 0: ", "Node 1: ")):
            endpoint = stripped.split(": ", 1)[1]
            if endpoint != ":0":
                current.nodes[int(stripped[5])] = normalize_endpoint(endpoint)
        elif HEX_LINE.fullmatch(stripped):
            record = binascii.unhexlify(stripped)
            node = 1 if line.startswith("\t") else 0
            missing = MISSING_RECORD.fullmatch(record)
            current.pieces[node].append(int(missing.group(1)) if missing else record)
    for stream in streams.values():
        stream.pieces = [normalize_pieces(p) for p in stream.pieces]
    return streams


def tshark_follow(path, indices, smtp_ports=()):
    """One tshark run: print every packet's tcp.stream and protocol stack, then follow the
    given streams. SMTP_PORTS are decoded as SMTP (`-d tcp.port==N,smtp`) besides tshark's own.

    Returns (exit code or None, {tcp.stream index: frames tshark decodes as SMTP},
    {index: TsharkStream}, stderr). Every stream seen is a key of the first dict, with 0 when
    none of its frames is SMTP.
    """
    cmd = ["tshark", "-n", "-r", str(path)]
    for port in smtp_ports:
        cmd += ["-d", f"tcp.port=={port},smtp"]
    cmd += ["-T", "fields", "-e", "tcp.stream", "-e", "frame.protocols"]
    for index in indices:
        cmd += ["-z", f"follow,tcp,raw,{index}"]
    rc, out, err = run(cmd)
    text = out.decode("ascii", "replace")
    fields, sep, follow = text.partition("\n=====")  # tap output comes after all packets
    seen = {}
    for line in fields.splitlines():
        stream, _, protocols = line.partition("\t")
        if stream.isdigit():
            smtp = "smtp" in protocols.strip().split(":")
            seen[int(stream)] = seen.get(int(stream), 0) + smtp
    return rc, seen, parse_follow_output(sep + follow), err


def tshark_streams(path, smtp_ports=()):
    """Follow every TCP stream of a capture. Returns (streams, error, warning); each stream's
    `smtp_frames` counts the frames tshark decodes as SMTP.

    Following streams that do not exist costs next to nothing, so the first run
    guesses indices 0..STREAMS_PER_TSHARK-1 and also lists the streams there
    are; only captures with more streams need further runs.
    """
    rc, seen, streams, err = tshark_follow(path, range(STREAMS_PER_TSHARK), smtp_ports)
    if rc is None or (rc != 0 and not seen):
        return None, f"tshark failed: {first_line(err) or f'exit {rc}'}", None
    warning = f"tshark exited {rc}: {first_line(err)}" if rc != 0 else None
    rest = sorted(i for i in seen if i not in streams)
    for start in range(0, len(rest), STREAMS_PER_TSHARK):
        rc, _, more, err = tshark_follow(path, rest[start:start + STREAMS_PER_TSHARK], smtp_ports)
        if rc is None or (rc != 0 and not more):
            return None, f"tshark failed: {first_line(err) or f'exit {rc}'}", None
        streams.update(more)
    streams = [s for i, s in sorted(streams.items()) if i in seen and None not in s.nodes]
    for stream in streams:
        stream.smtp_frames = seen[stream.index]
    return streams, None, warning


# --------------------------------------------------------------------------- smtptape

@dataclass
class Session:
    ident: int
    client: tuple = None
    server: tuple = None
    pieces: dict = field(default_factory=lambda: {"client": [], "server": []})
    tls: bool = False
    encrypted: dict = None


def smtptape_sessions(binary, path):
    """Run smtptape on a capture. Returns (sessions in order of appearance, error)."""
    rc, out, err = run([binary, "transcript", "--format", "json", "--show-secrets", str(path)])
    if rc is None:
        return None, f"smtptape failed: {err}"
    if rc == 2:
        return None, f"smtptape could not read the file: {first_line(err) or 'exit 2'}"
    if rc not in (0, 1):
        return None, f"smtptape failed with exit {rc}: {first_line(err)}"
    sessions = {}
    for number, line in enumerate(out.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            add_event(sessions, event)
        except (ValueError, KeyError, TypeError, binascii.Error) as problem:
            return None, f"smtptape output line {number} unusable: {problem}"
    for session in sessions.values():
        session.pieces = {d: normalize_pieces(p) for d, p in session.pieces.items()}
    return list(sessions.values()), None


def add_event(sessions, event):
    """Fold one smtptape JSON event into its session."""
    ident = event["session"]
    session = sessions.setdefault(ident, Session(ident))
    kind = event.get("type")
    if kind == "session_start":
        session.client = normalize_endpoint(event["client"])
        session.server = normalize_endpoint(event["server"])
    elif kind == "tls_start":
        # After STARTTLS with no TLS following (state "plaintext"), the stream goes on readable.
        session.tls = event.get("state", "encrypted") == "encrypted"
    elif kind == "session_end":
        if isinstance(event.get("encrypted_bytes"), dict):
            session.encrypted = event["encrypted_bytes"]
    elif session.tls:
        return  # nothing after tls_start is plaintext
    elif kind == "gap":
        session.pieces[event["from"]].append(int(event["bytes"]))
    elif "raw" in event and "from" in event:
        session.pieces[event["from"]].append(base64.b64decode(event["raw"], validate=True))


# --------------------------------------------------------------------------- comparison

@dataclass
class DirResult:
    kind: str                 # "same", "gap" (stopped at a smtptape gap tshark lacks), "differ"
    offset: int = 0           # where a difference is / where the comparison stopped
    compared: int = 0         # data bytes found equal
    notes: tuple = ()
    why: str = ""             # for "differ": what differs, if more than the bytes
    their_offset: int = 0     # the same place in tshark's stream (differs after silent omissions)


def compare_direction(mine, theirs, tls):
    """Compare smtptape's pieces (mine) with tshark's (theirs), from byte 0.

    With tls, tshark's stream may go on after smtptape's (encrypted) end.
    Offsets are stream offsets in smtptape's stream, gap bytes included.
    """
    s, t = mine, theirs
    i = si = j = tj = 0      # piece index and offset inside a data piece, for s and t
    pos = tpos = compared = 0  # stream offsets in s and t, data bytes found equal
    notes = ()
    skipped = None           # (pos, size, compared, tpos) at the last gap tshark seemed to omit

    def differ(at, why=""):
        if skipped and compared == skipped[2]:
            # Nothing matched after the gap we assumed tshark omits: blame the gap.
            return DirResult("differ", skipped[0], compared, notes[:-1],
                             f"smtptape reports a {skipped[1]}-byte gap where tshark has data",
                             skipped[3])
        return DirResult("differ", at, compared, notes, why, tpos + (at - pos))

    while True:
        sp = s[i] if i < len(s) else None
        tp = t[j] if j < len(t) else None
        if sp is None:
            if tp is None or tls:
                return DirResult("same", pos, compared, notes)
            return differ(pos, f"tshark marks {tp} bytes missing after smtptape's end"
                          if isinstance(tp, int) else "tshark's stream goes on")
        if isinstance(sp, bytes):
            if tp is None:
                return differ(pos, "tshark's stream ends here")
            if isinstance(tp, int):
                return differ(pos, f"tshark marks {tp} bytes missing where smtptape has data")
            n = min(len(sp) - si, len(tp) - tj)
            k = first_mismatch(sp[si:si + n], tp[tj:tj + n])
            if k is not None:
                compared += k
                return differ(pos + k)
            pos, tpos, compared, si, tj = pos + n, tpos + n, compared + n, si + n, tj + n
            if si == len(sp):
                i, si = i + 1, 0
            if tj == len(tp):
                j, tj = j + 1, 0
            continue
        # smtptape has a gap of sp bytes here
        if tp is None:
            note = f"smtptape reports a {sp}-byte gap at byte {pos} and tshark's stream stops there"
            return DirResult("gap", pos, compared, notes + (note,))
        if isinstance(tp, int):
            if tp != sp:
                return differ(pos, f"gap sizes differ: tshark {tp}, smtptape {sp}")
            notes += (f"both mark a {sp}-byte gap at byte {pos}",)
            i, j, pos, tpos = i + 1, j + 1, pos + sp, tpos + sp
            continue
        # tshark has data where smtptape has a gap: tshark drops bytes silently when
        # a payload was cut by the snap length. Assume that, and skip the gap on our side.
        notes += (f"tshark silently omits the {sp}-byte gap smtptape reports at byte {pos}",)
        skipped = (pos, sp, compared, tpos)
        i, si, pos = i + 1, 0, pos + sp


def context(pieces, offset, width=32):
    """Up to `width` bytes of a stream from a stream offset on, for --verbose."""
    out, pos = [], 0
    for p in pieces:
        size = p if isinstance(p, int) else len(p)
        if pos + size > offset and pos < offset + width:
            if isinstance(p, int):
                out.append(f"<{p}-byte gap>".encode())
            else:
                out.append(p[max(0, offset - pos):offset + width - pos])
        pos += size
    return repr(b"".join(out))


def summarize_notes(direction, notes, keep=3):
    """Row notes for one direction, at most `keep` of them plus a count of the rest."""
    shown = [f"{direction} {n}" for n in (notes if len(notes) <= keep + 1 else notes[:keep])]
    if len(notes) > keep + 1:
        shown.append(f"{direction}: {len(notes) - keep} more gap notes")
    return shown


def preamble_hint(mine, theirs, offset):
    """For a difference at byte 0: does smtptape's stream start further on in tshark's?

    That is what a tunnel (SOCKS, HTTP CONNECT) handshake that smtptape strips looks like.
    """
    if offset != 0 or not mine or not theirs:
        return ""
    if not isinstance(mine[0], bytes) or not isinstance(theirs[0], bytes):
        return ""
    start = theirs[0].find(mine[0][:64])
    if start <= 0:
        return ""
    return f"smtptape's stream starts like tshark's from byte {start} on (a tunnel preamble?)"


def compare_session(session, stream, verbose):
    """Verdict text, tally category and (client, server) bytes found equal for one matched
    connection (the bytes are None for rows that are not identical)."""
    by_node = {stream.nodes[0]: stream.pieces[0], stream.nodes[1]: stream.pieces[1]}
    if session.client not in by_node or session.server not in by_node:
        return "not comparable: tshark's endpoints do not match", "not comparable", None
    theirs = {"client": by_node[session.client], "server": by_node[session.server]}
    mine = session.pieces
    results = {d: compare_direction(mine[d], theirs[d], session.tls) for d in DIRECTIONS}

    # After TLS: the encrypted part of tshark's stream must have the length smtptape counted.
    if session.tls and session.encrypted:
        for d in DIRECTIONS:
            enc = session.encrypted.get(d)
            if (results[d].kind != "same" or not isinstance(enc, int)
                    or has_gap(mine[d]) or has_gap(theirs[d])):
                continue
            plain, total = stream_length(mine[d]), stream_length(theirs[d])
            if total != plain + enc:
                results[d] = DirResult("differ", min(total, plain + enc), results[d].compared, (),
                                       f"after TLS at byte {plain}, tshark has {total - plain} "
                                       f"encrypted bytes, smtptape counted {enc}")

    differing = [d for d in DIRECTIONS if results[d].kind == "differ"]
    if differing:
        parts = []
        for d in differing:
            r = results[d]
            total_mine = stream_length(mine[d])
            if r.why.startswith("after TLS"):
                total_mine += session.encrypted[d]
            text = (f"differs at {d} byte {r.offset} (tshark has {stream_length(theirs[d])} bytes,"
                    f" smtptape {total_mine})")
            why = r.why or preamble_hint(mine[d], theirs[d], r.offset)
            if why:
                text += f": {why}"
            if verbose and not r.why.startswith("after TLS"):
                text += (f" [tshark {context(theirs[d], r.their_offset)}"
                         f" smtptape {context(mine[d], r.offset)}]")
            parts.append(text)
        return "; also ".join(parts), "differs", None

    equal = (results["client"].compared, results["server"].compared)
    counts = f"{equal[0]}/{equal[1]} bytes"
    notes = [note for d in DIRECTIONS for note in summarize_notes(d, results[d].notes)]
    suffix = f": {'; '.join(notes)}" if notes else ""
    if any(r.kind == "gap" for r in results.values()):
        if results["client"].compared + results["server"].compared == 0:
            return (f"not comparable: smtptape reported gaps before any byte{suffix}",
                    "not comparable", None)
        return f"identical up to gap ({counts}){suffix}", "identical up to gap", equal
    if session.tls:
        return f"identical up to TLS ({counts}){suffix}", "identical up to TLS", equal
    return (f"identical ({results['client'].compared} client bytes, "
            f"{results['server'].compared} server bytes){suffix}", "identical", equal)


# --------------------------------------------------------------------------- per file

@dataclass
class Row:
    """One connection's verdict: a line of the report and a row of the TSV table."""
    capture: str              # path relative to FOLDER
    connection: str           # "client -> server", or "A <-> B" where smtptape gave no direction
    category: str
    counts: tuple = None      # (client, server) bytes found equal, for the identical categories
    detail: str = ""          # the verdict as printed

    def line(self):
        return f"{self.capture}  {self.connection}  {self.detail}"


def check_file(path, name, binary, verbose, smtp_ports=()):
    """Compare one capture. Returns (report lines, {category: count}, [Row])."""
    lines, tally, rows = [], {}, []

    def row(left, verdict, category, counts=None):
        rows.append(Row(name, left, category, counts, verdict))
        lines.append(rows[-1].line())
        tally[category] = tally.get(category, 0) + 1

    def either_way(stream):
        return f"{format_endpoint(stream.nodes[0])} <-> {format_endpoint(stream.nodes[1])}"

    sessions, smtptape_error = smtptape_sessions(binary, path)
    streams, tshark_error, warning = tshark_streams(path, smtp_ports)
    # tshark quotes the file's full path; the row already names it.
    tshark_error, warning = ((m.replace(f' "{path}"', "") if m else m)
                             for m in (tshark_error, warning))
    if warning:
        lines.append(f"{name}  (note: {warning}; comparing what it read)")
    if tshark_error and not sessions:
        lines.append(f"{name}  (note: {tshark_error})")

    if smtptape_error:
        # We do not know which connections smtptape would report: one row per TCP stream.
        for stream in streams or []:
            if stream.smtp_frames:
                row(either_way(stream), f"missed: tshark decodes {plural(stream.smtp_frames, 'frame')} as SMTP "
                    f"(tcp.stream {stream.index}); {smtptape_error}", "missed")
            else:
                row(either_way(stream), f"not comparable: {smtptape_error}", "not comparable")
        if not streams:
            row("-", f"not comparable: {smtptape_error}", "not comparable")
        return lines, tally, rows

    # Streams by endpoint pair (either order), in order of appearance.
    by_pair = {}
    for stream in streams or []:
        by_pair.setdefault(frozenset(stream.nodes), []).append(stream)

    used_pairs = set()
    for session in sessions:
        if session.client is None or session.server is None:
            row(f"session {session.ident}", "not comparable: no session_start event",
                "not comparable")
            continue
        left = f"{format_endpoint(session.client)} -> {format_endpoint(session.server)}"
        if tshark_error:
            row(left, f"not comparable: {tshark_error}", "not comparable")
            continue
        pair = frozenset((session.client, session.server))
        candidates = by_pair.get(pair)
        if not candidates:
            if pair in used_pairs:
                # smtptape ends a connection silent for longer than its idle timeout and starts a
                # new session when packets come again; tshark keeps them in the earlier stream.
                row(left, "not comparable: tshark keeps these packets in the earlier stream between "
                    "these endpoints (smtptape began a new session after the idle timeout)", "not comparable")
            else:
                row(left, "not comparable: tshark has no TCP stream between these endpoints",
                    "not comparable")
            continue
        used_pairs.add(pair)
        verdict, category, counts = compare_session(session, candidates.pop(0), verbose)
        row(left, verdict, category, counts)

    # Streams no session was matched with: missed when tshark's SMTP dissector decodes any of
    # their frames, else not SMTP.
    for stream in sorted((s for left in by_pair.values() for s in left), key=lambda s: s.index):
        if stream.smtp_frames:
            row(either_way(stream), f"missed: tshark decodes {plural(stream.smtp_frames, 'frame')} as SMTP "
                f"(tcp.stream {stream.index}); smtptape reports no session", "missed")
            continue
        tally["not SMTP (skipped)"] = tally.get("not SMTP (skipped)", 0) + 1
        if verbose:
            lines.append(f"{name}  {either_way(stream)}  not SMTP (skipped, tcp.stream {stream.index})")
    return lines, tally, rows


# --------------------------------------------------------------------------- expected table

TSV_COLUMNS = ("capture", "connection", "category", "client_bytes", "server_bytes", "note")
IDENTICAL = ("identical", "identical up to TLS", "identical up to gap")


def tshark_version():
    rc, out, _ = run(["tshark", "--version"])
    return first_line(out.decode("utf-8", "replace")) if rc == 0 else "tshark (version unknown)"


def row_key_list(rows):
    """[(capture, connection, n)] where n counts earlier rows with the same capture and
    connection (a pair of endpoints reused in one capture gives several rows)."""
    seen, keys = {}, []
    for r in rows:
        n = seen[(r.capture, r.connection)] = seen.get((r.capture, r.connection), 0) + 1
        keys.append((r.capture, r.connection, n))
    return keys


def row_note(r):
    """The TSV note: the verdict without what the other columns already say."""
    text = r.detail
    if r.counts is not None:
        rest = text.partition(")")[2]    # after "identical (... bytes)"
        text = rest[2:] if rest.startswith(": ") else ""
    elif text.startswith(f"{r.category}: "):
        text = text[len(r.category) + 2:]
    return text.replace("\t", " ").replace("\n", " ")


def write_tsv(path, rows, header_lines):
    with open(path, "w", encoding="utf-8") as out:
        for line in header_lines:
            out.write(f"# {line}\n")
        out.write("\t".join(TSV_COLUMNS) + "\n")
        for r in rows:
            counts = r.counts if r.counts is not None else ("-", "-")
            out.write("\t".join((r.capture, r.connection, r.category, str(counts[0]),
                                 str(counts[1]), row_note(r))) + "\n")


def read_tsv(path):
    """Rows of a table written by write_tsv (or edited by hand). Raises ValueError."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or line.startswith("#") or line.startswith("capture\t"):
                continue
            cells = line.split("\t")
            if len(cells) != len(TSV_COLUMNS):
                raise ValueError(f"{path}:{number}: {len(cells)} columns, want {len(TSV_COLUMNS)}")
            capture, connection, category, client, server, note = cells
            counts = None
            if client != "-" or server != "-":
                try:
                    counts = (int(client), int(server))
                except ValueError:
                    raise ValueError(f"{path}:{number}: byte counts must be integers or -")
            rows.append(Row(capture, connection, category, counts, note))
    return rows


def describe(r, note=False):
    """'category (N/M bytes)', with the row's note after a colon when NOTE and there is one."""
    counts = f" ({r.counts[0]}/{r.counts[1]} bytes)" if r.counts is not None else ""
    text = row_note(r) if note else ""
    return f"{r.category}{counts}" + (f": {text}" if text else "")


def compare_with_expected(actual, expected):
    """Differences between this run's rows and the expected table, as report lines.

    A row agrees when its category and byte counts are the same. A connection tshark decodes
    as SMTP and smtptape does not report ("missed") agrees only with an expected row marked
    "ignored" that gives the reason; an expected row marked "missed" never agrees.
    Returns (problems, ignored rows that agreed).
    """
    want = dict(zip(row_key_list(expected), expected))
    got = dict(zip(row_key_list(actual), actual))
    problems, ignored = [], []
    for key, r in got.items():
        where = f"{key[0]}  {key[1]}" + (f" (#{key[2]})" if key[2] > 1 else "")
        e = want.get(key)
        if e is None:
            problems.append(f"NEW      {where}: {describe(r, note=True)}")
        elif r.category == "missed" and e.category == "ignored":
            if e.detail.strip():
                ignored.append(f"{where}: {e.detail.strip()}")
            else:
                problems.append(f"MISSED   {where}: the table says ignored but gives no reason")
        elif r.category == "missed":
            problems.append(f"MISSED   {where}: {r.detail}")
        elif e.category == "missed":
            problems.append(f"CHANGED  {where}: the table says missed (unreviewed), now {describe(r)}")
        elif (r.category, r.counts) != (e.category, e.counts):
            problems.append(f"CHANGED  {where}: expected {describe(e)}, now {describe(r, note=True)}")
    for key, e in want.items():
        if key not in got:
            where = f"{key[0]}  {key[1]}" + (f" (#{key[2]})" if key[2] > 1 else "")
            problems.append(f"GONE     {where}: expected {describe(e)}, no such row now")
    return problems, ignored


def merge_for_writing(actual, previous):
    """The rows to write as the new expected table: this run's, except that a missed
    connection the previous table marked ignored (with a reason) stays ignored."""
    old = dict(zip(row_key_list(previous), previous))
    rows = []
    for key, r in zip(row_key_list(actual), actual):
        e = old.get(key)
        if r.category == "missed" and e is not None and e.category == "ignored" and e.detail.strip():
            r = Row(r.capture, r.connection, "ignored", None, e.detail.strip())
            r.detail = f"ignored: {e.detail.strip()}"
        rows.append(r)
    return rows


def find_captures(folder):
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for f in sorted(files):
            if f.lower().endswith(CAPTURE_SUFFIXES):
                found.append(Path(root) / f)
    return found


def default_binary():
    """$SMTPTAPE, else the repository's release build, else its debug build, else None."""
    if os.environ.get("SMTPTAPE"):
        return os.environ["SMTPTAPE"]
    for flavour in ("release", "debug"):
        candidate = REPOSITORY / ".build" / flavour / "smtptape"
        if candidate.exists():
            return str(candidate)
    return None


def main():
    parser = argparse.ArgumentParser(
        description="Compare smtptape's reassembled TCP streams with tshark's Follow TCP stream.",
        epilog=f"Build smtptape first: {BUILD_HINT}")
    parser.add_argument("folder", help="folder searched recursively for *.pcap, *.pcapng, *.cap")
    parser.add_argument("--smtptape", help="smtptape binary (default: $SMTPTAPE, else "
                                           ".build/release/smtptape, else .build/debug/smtptape, "
                                           "in the repository)")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="also list non-SMTP connections and show bytes around differences")
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="no row per connection: only notes, differences from --expected "
                             "and the tally")
    parser.add_argument("--jobs", "-j", type=int, default=min(8, os.cpu_count() or 1),
                        help="captures processed in parallel (default: %(default)s)")
    parser.add_argument("--decode-as-smtp", default=DEFAULT_SMTP_PORTS, metavar="PORTS",
                        help="TCP ports tshark decodes as SMTP besides its own 25 and 587, "
                             "comma-separated, for telling missed connections (default: "
                             "%(default)s, the non-standard ports of ../shared/captures; "
                             "'' for none)")
    table = parser.add_mutually_exclusive_group()
    table.add_argument("--expected", metavar="TSV",
                       help="compare the rows with this table; exit 1 on any difference")
    table.add_argument("--write-expected", metavar="TSV",
                       help="write this run's rows as the expected table (deliberate updates "
                            "only: review the diff); connections the old table marks ignored stay "
                            "ignored")
    parser.add_argument("--tsv", metavar="PATH", help="also write this run's rows as a table")
    args = parser.parse_args()

    binary = args.smtptape or default_binary()
    if not binary:
        sys.exit(f"compare-tshark: smtptape is not built; {BUILD_HINT}")
    if not (os.path.isfile(binary) or shutil.which(binary)):
        sys.exit(f"compare-tshark: smtptape binary {binary} not found; {BUILD_HINT}")
    if not shutil.which("tshark"):
        sys.exit("compare-tshark: tshark not found (Debian/Ubuntu: apt-get install tshark)")
    folder = Path(args.folder)
    if not folder.is_dir():
        sys.exit(f"compare-tshark: {folder} is not a folder")
    try:
        smtp_ports = [int(p) for p in args.decode_as_smtp.split(",") if p.strip()]
    except ValueError:
        sys.exit("compare-tshark: --decode-as-smtp takes port numbers separated by commas")
    expected = None
    if args.expected:
        try:
            expected = read_tsv(args.expected)
        except FileNotFoundError:
            sys.exit(f"compare-tshark: {args.expected} does not exist; write it with "
                     f"--write-expected {args.expected} and review it")
        except ValueError as problem:
            sys.exit(f"compare-tshark: {problem}")

    captures = find_captures(folder)
    totals, rows = {}, []
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        jobs = [pool.submit(check_file, path, path.relative_to(folder).as_posix(), binary,
                            args.verbose, smtp_ports)
                for path in captures]
        for job in jobs:  # print in file order
            lines, tally, file_rows = job.result()
            rows += file_rows
            for line in lines:
                if not args.quiet or "  (note: " in line:
                    print(line, flush=True)
            for category, count in tally.items():
                totals[category] = totals.get(category, 0) + count

    order = ["identical", "identical up to TLS", "identical up to gap", "differs",
             "not comparable", "missed", "not SMTP (skipped)"]
    print(f"tally ({len(captures)} captures): "
          + ", ".join(f"{totals.get(c, 0)} {c}" for c in order))

    header = [f"Expected results of scripts/compare-tshark.py over ../shared/captures "
              f"({len(captures)} captures, {len(rows)} connections).",
              f"Written with --write-expected using {tshark_version().rstrip('.')}; decode-as SMTP ports: "
              f"{','.join(map(str, smtp_ports)) or 'none'}.",
              "One row per connection, in capture order; rows agree when category and byte "
              "counts agree (the note is not compared).",
              "client_bytes/server_bytes: bytes found equal, for the identical categories; - "
              "otherwise.",
              "A connection tshark decodes as SMTP that smtptape does not report is 'missed' and "
              "fails the check,",
              "unless its row here says 'ignored' with the reason in the note (set by hand)."]
    if args.tsv:
        write_tsv(args.tsv, rows, header)
    if args.write_expected:
        try:
            previous = read_tsv(args.write_expected)
        except FileNotFoundError:
            previous = []
        except ValueError as problem:
            sys.exit(f"compare-tshark: {problem} (fix or delete the old table)")
        new_rows = merge_for_writing(rows, previous)
        write_tsv(args.write_expected, new_rows, header)
        print(f"wrote {len(new_rows)} rows to {args.write_expected}")
        missed = [r for r in new_rows if r.category == "missed"]
        for r in missed:
            print(f"MISSED   {r.capture}  {r.connection}: {r.detail}")
        if missed:
            print(f"{len(missed)} missed connections were written as 'missed': fix smtptape, or "
                  f"mark each 'ignored' in {args.write_expected} with the reason in its note")
            return 1
        return 0
    if expected is not None:
        problems, ignored = compare_with_expected(rows, expected)
        for line in ignored:
            print(f"ignored  {line}")
        if problems:
            print(f"DIFFERENCES from {args.expected} ({len(problems)}):")
            for line in problems:
                print(f"  {line}")
            print(f"If a change is intended, rewrite the table with --write-expected "
                  f"{args.expected} and commit it with the reason.")
            return 1
        print(f"all {len(rows)} connections as in {args.expected} "
              f"({len(ignored)} ignored as listed there)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
