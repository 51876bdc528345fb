import SMTPCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How much message data a text transcript shows.
public enum DataDisplay: String, CaseIterable, Sendable {
    /// Every line of every message.
    case full
    /// The header section of each message, then a one-line note of the body's size.
    case headers
    /// A one-line note per message.
    case none
}

/// Renders sessions as readable transcripts:
///
/// ```
/// == session 1: 127.0.0.1:40312 -> 127.0.0.1:25, 2026-11-29T01:27:53.000100Z, 0.012 s (mail.pcap)
///    +0.000  S: 220 mx.example.com ESMTP
///    +0.001  C: EHLO client.example.com
/// ```
///
/// Each session is gathered while it runs and written when it ends, so sessions that overlap in
/// time do not interleave. Non-printable and invalid UTF-8 bytes are shown as `\xNN`.
public final class TextTranscriptRenderer: SessionObserver {
    final class SessionText {
        let info: SessionInfo
        let body = ByteWriter(capacity: 2048)
        /// A message line not yet complete (message data arrives in arbitrary pieces).
        var partialLine: [UInt8] = []
        var inHeaders = true
        var bodyBytes = 0
        var bodyLines = 0
        /// Set once part of the session was written before it ended (it grew past ``spillSize``).
        var spilled = false

        init(info: SessionInfo) { self.info = info }
    }

    let output: ByteOutput
    let data: DataDisplay
    let showSecrets: Bool
    let colour: Bool
    /// Writes each session out as it ends, instead of when the buffer fills (a live capture).
    public var flushesEachSession = false
    /// Live sessions by id: session ids are consecutive and end roughly in order, so an array
    /// from the oldest live id is both small and free of hashing. (An array, not a deque: this
    /// lookup runs whenever packets of another session come, and an array's is the cheapest.)
    var sessions: [SessionText?] = []
    /// Entries before `head` are ended sessions not yet compacted away.
    var head = 0
    /// The id of `sessions[0]`.
    var firstSessionID = 1
    /// The session events go to. Not counted as an owner (`sessions` holds every live one), so that
    /// switching sessions, per packet, costs no reference counting.
    unowned(unsafe) var current: SessionText?
    /// A reused buffer for headers and summaries.
    let scratch = ByteWriter(capacity: 1024)
    var rfc3339 = RFC3339Writer()

    public init(output: ByteOutput, data: DataDisplay = .headers, showSecrets: Bool = false, colour: Bool = false) {
        self.output = output
        self.data = data
        self.showSecrets = showSecrets
        self.colour = colour
    }

    // MARK: Formatting

    /// ANSI SGR parameters.
    enum Colour: UInt8 {
        case reset = 0, bold = 1, dim = 2, failure = 31, success = 32, transient = 33, marker = 35, client = 36
    }

    @inline(__always)
    func paint(_ text: ByteWriter, _ colour: Colour) {
        guard self.colour else { return }
        text.append(0x1B)
        text.append(0x5B)
        text.appendDecimal(Int(colour.rawValue))
        text.append(0x6D)
    }

    func prefix(_ session: SessionText, time: Timestamp, tag: StaticString, colour: Colour) {
        paint(session.body, .dim)
        // `    +1.234`, right-aligned in ten columns, written as bytes (this runs for every line).
        let millis = Int(max(0, time.nanoseconds - session.info.start.nanoseconds) / 1_000_000)
        let whole = millis / 1000
        let fraction = millis % 1000
        if whole < 10 {
            // The common case, `     +1.234`, as one fixed-size write.
            let stamp: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (
                0x20, 0x20, 0x20, 0x20, 0x2B, UInt8(0x30 + whole), 0x2E,
                UInt8(0x30 + fraction / 100), UInt8(0x30 + fraction / 10 % 10), UInt8(0x30 + fraction % 10))
            withUnsafeBytes(of: stamp) { session.body.append($0) }
        } else {
            var digits = 1
            var rest = whole
            while rest >= 10 { rest /= 10; digits += 1 }
            for _ in 0..<max(1, 10 - digits - 5) { session.body.append(0x20) }
            session.body.append(0x2B)
            session.body.appendDecimal(whole)
            session.body.append(0x2E)
            session.body.append(UInt8(0x30 + fraction / 100))
            session.body.append(UInt8(0x30 + fraction / 10 % 10))
            session.body.append(UInt8(0x30 + fraction % 10))
        }
        paint(session.body, .reset)
        session.body.append("  ")
        paint(session.body, colour)
        session.body.append(tag)
    }

    /// Appends one line's content (without its line ending), escaped for display.
    func appendEscaped(_ content: UnsafeRawBufferPointer, to body: ByteWriter) {
        var index = 0
        let count = content.count
        while index < count {
            // Copy the run of printable ASCII in one go; most lines are nothing else.
            var run = index
            while run < count, case let b = content[run], b >= 0x20, b < 0x7F { run += 1 }
            if run > index {
                body.append(UnsafeRawBufferPointer(rebasing: content[index..<run]))
                index = run
                if index == count { break }
            }
            let byte = content[index]
            if byte >= 0x20, byte < 0x7F || byte == 0x09 {
                body.append(byte)
                index += 1
            } else if byte >= 0x80, case let length = UTF8Validation.sequenceLength(content, at: index), length > 0,
                      !(byte == 0xC2 && content[index + 1] < 0xA0) {  // C1 controls are escaped
                body.append(UnsafeRawBufferPointer(rebasing: content[index..<(index + length)]))
                index += length
            } else if byte == 0x09 {
                body.append(byte)
                index += 1
            } else {
                body.append(ByteString.hexEscape(byte))
                index += 1
            }
        }
    }

    func appendFlags(_ flags: LineFlags, to session: SessionText) {
        guard !flags.isEmpty else { return }
        paint(session.body, .marker)
        session.body.append("  [")
        session.body.append(flags.names.joined(separator: ", "))
        session.body.append(0x5D)
    }

    func endLine(_ session: SessionText) {
        paint(session.body, .reset)
        session.body.append(0x0A)
        if session.body.count > Self.spillSize { spill(session) }
    }

    /// Sessions are held until they end so that they do not interleave; one that grows past this
    /// is written out in parts instead, so that memory stays bounded.
    static let spillSize = 4 << 20

    func spill(_ session: SessionText) {
        writeHeader(session, end: nil, part: true)
        output.append(session.body.bytes)
        session.body.removeAll()
        session.body.shrink(to: 1 << 16)
        session.spilled = true
    }

    func writeHeader(_ session: SessionText, end: Timestamp?, part: Bool) {
        let info = session.info
        let header = scratch
        header.removeAll()
        paint(header, .bold)
        header.append("== session ")
        header.appendDecimal(info.id)
        if part { header.append(" (part, continued below)") } else if session.spilled { header.append(" (end)") }
        header.append(": ")
        if let name = info.name {
            header.append(name)
        } else {
            header.append(info.client)
            header.append(" -> ")
            header.append(info.server)
            header.append(", ")
            rfc3339.append(info.start, to: header)
        }
        if let end {
            header.append(", ")
            Self.appendSeconds(end.nanoseconds - info.start.nanoseconds, to: header)
            header.append(" s")
        }
        header.append(" (")
        header.append(info.source)
        header.append(0x29)
        if !info.handshakeSeen { header.append(" [began before the capture]") }
        paint(header, .reset)
        header.append(0x0A)
        output.append(header.bytes)
    }

    /// Writes each line of `raw` with the tag.
    func appendLines(_ raw: UnsafeRawBufferPointer, session: SessionText, time: Timestamp, tag: StaticString, colour: Colour, flags: LineFlags) {
        guard let base = raw.baseAddress else { return }
        var start = 0
        while start < raw.count {
            let next = memchr(base + start, 0x0A, raw.count - start).map { base.distance(to: UnsafeRawPointer($0)) + 1 } ?? raw.count
            prefix(session, time: time, tag: tag, colour: colour)
            appendEscaped(JSONTranscriptWriter.content(UnsafeRawBufferPointer(rebasing: raw[start..<next])), to: session.body)
            if next == raw.count { appendFlags(flags, to: session) }
            endLine(session)
            start = next
        }
    }

    func marker(_ session: SessionText, time: Timestamp, _ text: String) {
        prefix(session, time: time, tag: "-- ", colour: .marker)
        session.body.append(text)
        endLine(session)
    }

    func marker(_ session: SessionText, time: Timestamp, _ text: StaticString) {
        prefix(session, time: time, tag: "-- ", colour: .marker)
        session.body.append(text)
        endLine(session)
    }

    // MARK: SessionObserver

    public func sessionStarted(_ info: SessionInfo) {
        let session = SessionText(info: info)
        if sessions.isEmpty { firstSessionID = info.id; head = 0 }
        let index = info.id - firstSessionID
        if index >= sessions.count { sessions.append(contentsOf: repeatElement(nil, count: index - sessions.count + 1)) }
        sessions[index] = session
        current = session
    }

    public func select(session id: Int) {
        let index = id - firstSessionID
        current = index >= 0 && index < sessions.count ? sessions[index] : nil
    }

    func removeSession(_ id: Int) -> SessionText? {
        let index = id - firstSessionID
        guard index >= 0, index < sessions.count, let session = sessions[index] else { return nil }
        sessions[index] = nil
        // Step over ended sessions at the front; compact only now and then, so that ending a
        // session costs O(1) however many are open.
        while head < sessions.count, sessions[head] == nil { head += 1 }
        if head == sessions.count {
            sessions.removeAll(keepingCapacity: true)
            firstSessionID += head
            head = 0
        } else if head > 1024, head * 2 > sessions.count {
            sessions.removeFirst(head)
            firstSessionID += head
            head = 0
        }
        return session
    }

    public func sessionEnded(_ info: SessionInfo, summary: SessionSummary, reason: SessionEndReason, time: Timestamp) {
        guard let session = removeSession(info.id) else { return }
        if current === session { current = nil }
        marker(session, time: time, reason.phrase)
        // Written as bytes: this runs once per session, and captures hold tens of thousands.
        writeHeader(session, end: time, part: false)
        output.append(session.body.bytes)
        let header = scratch
        header.removeAll()
        paint(header, .bold)
        header.append("== summary: ")
        Self.appendSummary(summary, to: header)
        paint(header, .reset)
        header.append("\n\n")
        output.append(header.bytes)
        if flushesEachSession { output.flush() }
    }

    /// `1.234`: seconds with milliseconds.
    static func appendSeconds(_ nanoseconds: Int64, to out: ByteWriter) {
        let millis = Int(max(0, nanoseconds) / 1_000_000)
        out.appendDecimal(millis / 1000)
        out.append(0x2E)
        let fraction = millis % 1000
        out.append(UInt8(0x30 + fraction / 100))
        out.append(UInt8(0x30 + fraction / 10 % 10))
        out.append(UInt8(0x30 + fraction % 10))
    }

    /// `from <a@b> to <c@d> (250), <e@f> (550); 1 message (345 bytes) -> 250; last reply 221`
    public static func summaryText(_ summary: SessionSummary) -> String {
        let out = ByteWriter()
        appendSummary(summary, to: out)
        return String(decoding: out.bytes, as: UTF8.self)
    }

    /// A path as the client sent it (`<a@b>`, or without brackets when it had none), escaped.
    static func appendAddress(_ entry: EnvelopeAddress, to out: ByteWriter) {
        if entry.bracketed { out.append(0x3C) }
        if entry.address.bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) {
            out.append(entry.address.bytes)
        } else {
            out.append(ByteString.escaped(entry.address.bytes))
        }
        if entry.bracketed { out.append(0x3E) }
        if let code = entry.replyCode {
            out.append(" (")
            out.appendDecimal(code)
            out.append(0x29)
        }
    }

    static func appendSummary(_ summary: SessionSummary, to out: ByteWriter) {
        if !summary.senders.isEmpty {
            out.append("from ")
            for (index, sender) in summary.senders.enumerated() {
                if index > 0 { out.append(", ") }
                appendAddress(sender, to: out)
            }
            if !summary.recipients.isEmpty {
                out.append(" to ")
                for (index, recipient) in summary.recipients.enumerated() {
                    if index > 0 { out.append(", ") }
                    appendAddress(recipient, to: out)
                }
            }
            out.append("; ")
        }
        out.appendDecimal(summary.completedMessages)
        out.append(summary.completedMessages == 1 ? " message" : " messages")
        if summary.completedMessages > 0 {
            out.append(" (")
            out.appendDecimal(summary.messageBytes)
            out.append(" bytes)")
        }
        if !summary.messageReplyCodes.isEmpty {
            out.append(" -> ")
            for (index, code) in summary.messageReplyCodes.enumerated() {
                if index > 0 { out.append(", ") }
                out.appendDecimal(code)
            }
        }
        if let mechanism = summary.authMechanism {
            out.append("; AUTH ")
            out.append(mechanism)
            if let code = summary.authReplyCode {
                out.append(" -> ")
                out.appendDecimal(code)
            }
        }
        if let tls = summary.tls {
            out.append(tls == .startTLS ? "; STARTTLS" : "; implicit TLS")
            switch summary.tlsState {
            case .plaintext:
                out.append(" (no TLS followed)")
            case .decrypted:
                out.append(" (decrypted)")
            case .encrypted, nil:
                out.append(", ")
                out.appendDecimal(summary.encryptedClient)
                out.append(0x2F)
                out.appendDecimal(summary.encryptedServer)
                out.append(" encrypted bytes client/server")
            }
        }
        if summary.gapBytes > 0 {
            out.append("; ")
            out.appendDecimal(summary.gapBytes)
            out.append(" bytes missing")
        }
        out.append("; last reply ")
        if let code = summary.lastReplyCode { out.appendDecimal(code) } else { out.append("none") }
    }

    public func command(_ raw: UnsafeRawBufferPointer, verb: SMTPVerb, flags: LineFlags, secret: Range<Int>?, time: Timestamp) {
        guard let session = current else { return }
        if let secret, !showSecrets {
            Secrets.redact(raw, secret: secret).withUnsafeBytes { appendLines($0, session: session, time: time, tag: "C: ", colour: .client, flags: flags) }
        } else {
            appendLines(raw, session: session, time: time, tag: "C: ", colour: .client, flags: flags)
        }
    }

    public func reply(_ raw: UnsafeRawBufferPointer, lineCount: Int, code: Int?, context: ReplyContext, flags: LineFlags, time: Timestamp) {
        guard let session = current else { return }
        let colour: Colour = switch (code ?? 0) / 100 {
        case 2, 3: .success
        case 4: .transient
        case 5: .failure
        default: .marker
        }
        appendLines(raw, session: session, time: time, tag: "S: ", colour: colour, flags: flags)
    }

    public func authResponse(_ raw: UnsafeRawBufferPointer, secret: Range<Int>?, flags: LineFlags, time: Timestamp) {
        command(raw, verb: .auth, flags: flags, secret: secret, time: time)
    }

    public func messageData(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, atLineStart: Bool, time: Timestamp) {
        guard data != .none, let session = current else { return }
        if transfer == .data {
            var unstuffed: [UInt8] = []
            DotStuffing.unstuff(raw, atLineStart: atLineStart, into: &unstuffed)
            unstuffed.withUnsafeBytes { addMessageBytes($0, session: session, time: time) }
        } else {
            addMessageBytes(raw, session: session, time: time)
        }
    }

    /// Splits message bytes into lines and shows them as the display mode asks.
    func addMessageBytes(_ bytes: UnsafeRawBufferPointer, session: SessionText, time: Timestamp) {
        var start = 0
        while start < bytes.count {
            guard let newline = UnsafeRawBufferPointer(rebasing: bytes[start...]).firstIndex(of: 0x0A) else {
                session.partialLine.append(contentsOf: bytes[start...])
                if session.partialLine.count > SMTPLimits.unterminatedLineCap {
                    // Binary data with no line breaks: show it in pieces rather than hold it all.
                    let piece = session.partialLine
                    session.partialLine.removeAll(keepingCapacity: false)
                    piece.withUnsafeBytes { messageLine($0, session: session, time: time) }
                }
                return
            }
            let end = start + newline + 1
            if session.partialLine.isEmpty {
                messageLine(UnsafeRawBufferPointer(rebasing: bytes[start..<end]), session: session, time: time)
            } else {
                session.partialLine.append(contentsOf: bytes[start..<end])
                let line = session.partialLine
                session.partialLine.removeAll(keepingCapacity: true)
                line.withUnsafeBytes { messageLine($0, session: session, time: time) }
            }
            start = end
        }
    }

    func messageLine(_ line: UnsafeRawBufferPointer, session: SessionText, time: Timestamp) {
        let content = JSONTranscriptWriter.content(line)
        if data == .full || session.inHeaders {
            prefix(session, time: time, tag: "D: ", colour: .dim)
            appendEscaped(content, to: session.body)
            endLine(session)
            if content.isEmpty { session.inHeaders = false }
        } else {
            session.bodyBytes += line.count
            session.bodyLines += 1
        }
    }

    public func messageEnd(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, size: Int, complete: Bool, time: Timestamp) {
        guard let session = current else { return }
        flushPartialLine(session, time: time)
        switch data {
        case .none:
            // Built as bytes: this runs for every message.
            prefix(session, time: time, tag: "-- ", colour: .marker)
            session.body.append("message ")
            session.body.appendDecimal(message)
            session.body.append(": ")
            session.body.appendDecimal(size)
            session.body.append(transfer == .data ? " bytes via DATA" : " bytes via BDAT")
            if !complete { session.body.append(", incomplete") }
            endLine(session)
        case .headers:
            if session.bodyLines > 0 || !complete {
                marker(session, time: time, "message \(message) body: \(session.bodyLines) lines, \(session.bodyBytes) bytes (--data full shows it)" + (complete ? "" : "; incomplete"))
            }
        case .full:
            if !complete { marker(session, time: time, "message \(message) incomplete") }
        }
        session.inHeaders = true
        session.bodyBytes = 0
        session.bodyLines = 0
        if !raw.isEmpty { appendLines(raw, session: session, time: time, tag: "C: ", colour: .client, flags: []) }
    }

    /// A message line that never got its line ending is shown when the message ends or a gap cuts it.
    func flushPartialLine(_ session: SessionText, time: Timestamp) {
        guard !session.partialLine.isEmpty else { return }
        let line = session.partialLine
        session.partialLine.removeAll(keepingCapacity: true)
        line.withUnsafeBytes { messageLine($0, session: session, time: time) }
    }

    public func fragment(_ raw: UnsafeRawBufferPointer, side: Side, secret: Bool, time: Timestamp) {
        guard let session = current else { return }
        let tag: StaticString = side == .client ? "C? " : "S? "
        if secret, !showSecrets {
            Secrets.redact(raw, secret: 0..<SMTPLine.content(raw).count).withUnsafeBytes {
                appendLines($0, session: session, time: time, tag: tag, colour: .marker, flags: [])
            }
        } else {
            appendLines(raw, session: session, time: time, tag: tag, colour: .marker, flags: [])
        }
    }

    public func gap(side: Side, bytes: Int, time: Timestamp) {
        guard let session = current else { return }
        // A message line cut by the hole is not joined to what comes after it.
        if side == .client { flushPartialLine(session, time: time) }
        marker(session, time: time, "gap: \(bytes) \(side.name) bytes missing from the capture")
    }

    public func tlsStarted(_ start: TLSStart, time: Timestamp) {
        guard let session = current else { return }
        marker(session, time: time, Self.tlsMarker(start))
    }

    /// What a transcript says where TLS began.
    public static func tlsMarker(_ start: TLSStart) -> String {
        let how = start.mode == .startTLS ? "TLS started (STARTTLS)" : "implicit TLS"
        switch start.state {
        case .encrypted:
            return start.mode == .startTLS ? how + ": the rest of the session is encrypted" : how + ": the session is encrypted from the start"
        case .plaintext:
            return "STARTTLS accepted, but no TLS followed: the session goes on in plaintext"
        case .decrypted(let version, let suite):
            if let version, let suite { return "\(version), \(suite), decrypted with the key log" }
            return how + ": the dialogue inside TLS follows, in the clear"
        }
    }

    public func encrypted(side: Side, bytes: Int, time: Timestamp) {}

    public func tlsUndecryptable(side: Side?, reason: String, time: Timestamp) {
        guard let session = current else { return }
        if side == .client { flushPartialLine(session, time: time) }
        marker(session, time: time, Self.undecryptableMarker(side: side, reason: reason))
    }

    /// What a transcript says where TLS could not be decrypted.
    public static func undecryptableMarker(side: Side?, reason: String) -> String {
        let whose = side.map { "the \($0.name)'s TLS records" } ?? "TLS"
        return "cannot decrypt \(whose): \(reason); the rest is counted as encrypted"
    }
}
