/// One line of a server reply (RFC 5321 4.2): `250-SIZE 10240000` or `250 OK`.
///
/// Real servers break the grammar (`250OK`, a bare code, no code at all); such lines are parsed
/// as far as they go and flagged, never rejected.
public struct SMTPReplyLine: Hashable, Sendable {
    /// The three-digit code, or `nil` when the line does not start with three digits.
    public var code: Int?
    /// `true` for `250-...`: more lines of the same reply follow.
    public var isContinuation: Bool
    /// The text after the code and its separator, without the line ending.
    public var text: ByteString
    /// `true` when the code is followed directly by text, with neither space nor hyphen (`250OK`).
    public var missingSeparator: Bool

    public init(code: Int?, isContinuation: Bool = false, text: ByteString = ByteString([UInt8]()), missingSeparator: Bool = false) {
        self.code = code
        self.isContinuation = isContinuation
        self.text = text
        self.missingSeparator = missingSeparator
    }

    /// Parses a line, with or without its line ending.
    public init(line: UnsafeRawBufferPointer) {
        var end = line.count
        while end > 0, line[end - 1] == 0x0A || line[end - 1] == 0x0D { end -= 1 }
        guard let code = SMTPReplyLine.code(line) else {
            self.init(code: nil, text: ByteString(UnsafeRawBufferPointer(rebasing: line[0..<end])))
            return
        }
        if end == 3 {
            self.init(code: code)
            return
        }
        switch line[3] {
        case 0x2D:
            self.init(code: code, isContinuation: true, text: ByteString(UnsafeRawBufferPointer(rebasing: line[4..<end])))
        case 0x20:
            self.init(code: code, text: ByteString(UnsafeRawBufferPointer(rebasing: line[4..<end])))
        default:
            self.init(code: code, text: ByteString(UnsafeRawBufferPointer(rebasing: line[3..<end])), missingSeparator: true)
        }
    }

    public init(_ line: String) {
        self = Array(line.utf8).withUnsafeBytes { SMTPReplyLine(line: $0) }
    }

    /// The code of a line that starts with three digits, the first 2-5 (RFC 5321 4.2).
    @inline(__always)
    public static func code(_ line: UnsafeRawBufferPointer) -> Int? {
        guard line.count >= 3 else { return nil }
        let a = line[0] &- 0x30, b = line[1] &- 0x30, c = line[2] &- 0x30
        guard a >= 2, a <= 5, b <= 9, c <= 9 else { return nil }
        if line.count > 3, line[3] >= 0x30, line[3] <= 0x39 { return nil }  // four digits: not a code
        return Int(a) * 100 + Int(b) * 10 + Int(c)
    }

    /// Whether bytes begin a reply line: a code, then a space, `-`, or the end of the line.
    public static func beginsReply(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard code(bytes) != nil else { return false }
        return bytes.count == 3 || bytes[3] == 0x20 || bytes[3] == 0x2D || bytes[3] == 0x0D || bytes[3] == 0x0A
    }

    /// Canonical wire form with CRLF.
    public var encoded: [UInt8] {
        guard let code else { return text.bytes + [0x0D, 0x0A] }
        var out = Array(String(code).utf8)
        if isContinuation {
            out.append(0x2D)
        } else if !text.isEmpty, !missingSeparator {
            out.append(0x20)
        }
        out += text.bytes
        out += [0x0D, 0x0A]
        return out
    }
}

/// A complete reply: one or more lines with the same code (RFC 5321 4.2.1).
///
/// ```
/// S: 250-mail.example.com
/// S: 250-PIPELINING
/// S: 250 SIZE 10240000
/// ```
public struct SMTPReply: Hashable, Sendable {
    public var lines: [SMTPReplyLine]

    public init(lines: [SMTPReplyLine]) { self.lines = lines }

    /// A reply of one or more text lines with one code.
    public init(code: Int, _ texts: [String]) {
        let texts = texts.isEmpty ? [""] : texts
        lines = texts.enumerated().map { index, text in
            SMTPReplyLine(code: code, isContinuation: index < texts.count - 1, text: ByteString(text))
        }
    }

    /// The code of the final line (which is what the client acts on).
    public var code: Int? { lines.last?.code }

    /// The reply class: 2 success, 3 intermediate, 4 transient failure, 5 permanent failure.
    public var codeClass: Int? { code.map { $0 / 100 } }

    /// The RFC 3463 enhanced status code at the start of the first line's text (RFC 2034), if any.
    public var enhancedStatus: EnhancedStatusCode? {
        lines.first.flatMap { EnhancedStatusCode(prefixOf: $0.text.bytes) }
    }

    public var encoded: [UInt8] { lines.flatMap(\.encoded) }
}

/// An enhanced mail system status code, `class.subject.detail` (RFC 3463, RFC 2034): `5.1.1`.
public struct EnhancedStatusCode: Hashable, Sendable, CustomStringConvertible {
    public var statusClass: Int
    public var subject: Int
    public var detail: Int

    public init(statusClass: Int, subject: Int, detail: Int) {
        self.statusClass = statusClass
        self.subject = subject
        self.detail = detail
    }

    /// Reads the code from the start of a reply text, followed by a space or the end.
    public init?<C: Collection>(prefixOf text: C) where C.Element == UInt8 {
        var numbers: [Int] = []
        var current = -1
        var digits = 0
        var classDigits = 0
        for byte in text {
            if byte >= 0x30, byte <= 0x39 {
                current = (current < 0 ? 0 : current) * 10 + Int(byte - 0x30)
                digits += 1
                if digits > 3 { return nil }
            } else if byte == 0x2E, current >= 0, numbers.count < 2 {
                if numbers.isEmpty { classDigits = digits }
                numbers.append(current)
                current = -1
                digits = 0
            } else if byte == 0x20 {
                break
            } else {
                return nil
            }
        }
        // class is one digit (2, 4 or 5); subject and detail one to three digits (RFC 3463 section 2).
        guard numbers.count == 2, current >= 0, [2, 4, 5].contains(numbers[0]), classDigits == 1 else { return nil }
        self.init(statusClass: numbers[0], subject: numbers[1], detail: current)
    }

    public var description: String { "\(statusClass).\(subject).\(detail)" }
}
