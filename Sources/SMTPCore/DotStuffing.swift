import CSMTPScan

/// Transparency for message data sent with DATA (RFC 5321 4.5.2).
///
/// On the wire every line of the message that starts with `.` gets one more `.`, and the message
/// ends with a line holding a single `.`: `C: ..hidden` carries the line `.hidden`. BDAT chunks
/// (RFC 3030) are not dot-stuffed.
public enum DotStuffing {
    /// The offset of the next `.` that begins a line (follows an LF) at or after `from`, found
    /// with the vectorised scan; `nil` when there is none.
    @inline(__always)
    public static func nextDotLine(_ base: UnsafeRawPointer, _ count: Int, from: Int) -> Int? {
        guard from < count, let found = smtp_find_newline_dot(base + from, count - from) else { return nil }
        return base.distance(to: found) + 1
    }

    /// Where the `.` line that ends a message is in `raw` (which begins at a line start): the
    /// range of `.` and its line ending (LF or CRLF), or `nil` when no such line is complete.
    public static func terminatorLine(in raw: UnsafeRawBufferPointer) -> Range<Int>? {
        guard let base = raw.baseAddress, !raw.isEmpty else { return nil }
        func terminator(at dot: Int) -> Range<Int>? {
            if dot + 1 < raw.count, raw[dot + 1] == 0x0A { return dot..<(dot + 2) }
            if dot + 2 < raw.count, raw[dot + 1] == 0x0D, raw[dot + 2] == 0x0A { return dot..<(dot + 3) }
            return nil
        }
        if raw[0] == 0x2E, let found = terminator(at: 0) { return found }
        var position = 0
        while let dot = nextDotLine(base, raw.count, from: position) {
            if let found = terminator(at: dot) { return found }
            position = dot
        }
        return nil
    }

    /// Removes the transparency dots from wire bytes and appends the message bytes to `output`.
    ///
    /// `atLineStart` says whether `wire` begins at the start of a line; the result says whether
    /// the bytes after `wire` do. The terminating `.` line must not be part of `wire`.
    @discardableResult
    public static func unstuff(_ wire: UnsafeRawBufferPointer, atLineStart: Bool, into output: inout [UInt8]) -> Bool {
        var lineStart = atLineStart
        var index = 0
        let count = wire.count
        // No exact reserveCapacity here: callers append a message piece by piece, and reserving
        // exactly the new size each time would defeat the array's geometric growth (a copy of
        // the whole message per piece).
        while index < count {
            if lineStart, wire[index] == 0x2E { index += 1 }  // the stuffed dot
            guard index < count else { return false }
            let rest = UnsafeRawBufferPointer(rebasing: wire[index...])
            if let newline = rest.firstIndex(of: 0x0A) {
                output.append(contentsOf: rest[...newline])
                index += newline + 1
                lineStart = true
            } else {
                output.append(contentsOf: rest)
                return false
            }
        }
        return lineStart
    }

    public static func unstuff(_ wire: [UInt8], atLineStart: Bool = true) -> [UInt8] {
        var out: [UInt8] = []
        _ = wire.withUnsafeBytes { unstuff($0, atLineStart: atLineStart, into: &out) }
        return out
    }

    /// Encodes a message for DATA: stuffs leading dots and appends the `.` terminator line.
    /// A message that does not end with CRLF gets one first, as RFC 5321 4.1.1.4 requires;
    /// with `keepingBareLF`, a last line that ends in a bare LF (as a sloppy client recorded it)
    /// is left as it was.
    public static func stuff(_ message: [UInt8], keepingBareLF: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(message.count + 8)
        var lineStart = true
        for byte in message {
            if lineStart, byte == 0x2E { out.append(0x2E) }
            out.append(byte)
            lineStart = byte == 0x0A
        }
        let endsWithCRLF = out.count >= 2 && out[out.count - 2] == 0x0D && out[out.count - 1] == 0x0A
        if !out.isEmpty && !endsWithCRLF && !(keepingBareLF && out.last == 0x0A) {
            out += [0x0D, 0x0A]
        }
        out += [0x2E, 0x0D, 0x0A]
        return out
    }
}
