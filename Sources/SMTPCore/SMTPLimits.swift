/// Length limits of RFC 5321 section 4.5.3.1, in one place.
///
/// smtptape records what real peers send, so these limits are *flagged* when exceeded
/// (see ``LineFlags/overLength``), never enforced by dropping bytes.
/// Lines as SMTP frames them.
public enum SMTPLine {
    /// A line without its line ending (CRLF, or a bare LF).
    @inlinable @inline(__always)
    public static func content(_ raw: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var end = raw.count
        if end > 0, raw[end - 1] == 0x0A { end -= 1 }
        if end > 0, raw[end - 1] == 0x0D { end -= 1 }
        return UnsafeRawBufferPointer(rebasing: raw[0..<end])
    }

    public static func content(_ line: [UInt8]) -> [UInt8] {
        line.withUnsafeBytes { Array(content($0)) }
    }
}

public enum SMTPLimits {
    /// A command line, including the verb and CRLF (RFC 5321 4.5.3.1.4).
    public static let commandLine = 512
    /// A reply line, including the code and CRLF (RFC 5321 4.5.3.1.5).
    public static let replyLine = 512
    /// A line of message text, including CRLF (RFC 5321 4.5.3.1.6).
    public static let textLine = 1000
    /// A local part of a mailbox (RFC 5321 4.5.3.1.1).
    public static let localPart = 64
    /// A domain (RFC 5321 4.5.3.1.2).
    public static let domain = 255
    /// A path, including the angle brackets (RFC 5321 4.5.3.1.3).
    public static let path = 256
    /// The minimum number of recipients a server must accept (RFC 5321 4.5.3.1.8).
    public static let recipients = 100

    /// How long an unterminated command or reply line (or a multi-line reply) may grow before it
    /// is emitted as it is. Far above any RFC limit; it only bounds memory when a peer never stops.
    public static let unterminatedLineCap = 1 << 20

    /// How many commands may wait for replies before the oldest are given up (a capture with only
    /// the client's side, or a client that never stops pipelining).
    public static let pendingCommandCap = 4096
}
