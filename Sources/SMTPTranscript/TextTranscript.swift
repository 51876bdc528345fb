import SMTPCore

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
        var body: [UInt8] = []
        /// A message line not yet complete (message data arrives in arbitrary pieces).
        var partialLine: [UInt8] = []
        var inHeaders = true
        var bodyBytes = 0
        var bodyLines = 0
        var lastDataTime = Timestamp(nanoseconds: 0)

        init(info: SessionInfo) { self.info = info }
    }

    let output: ByteOutput
    let data: DataDisplay
    let showSecrets: Bool
    let colour: Bool
    var sessions: [Int: SessionText] = [:]
    var current: SessionText?

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
    func paint(_ text: inout [UInt8], _ colour: Colour) {
        guard self.colour else { return }
        text.append(contentsOf: [0x1B, 0x5B])
        text.appendDecimal(Int(colour.rawValue))
        text.append(0x6D)
    }

    /// `+1.234` seconds since the session began.
    static func seconds(_ nanoseconds: Int64) -> String {
        let millis = max(0, nanoseconds) / 1_000_000
        let fraction = String(millis % 1000)
        return "\(millis / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }

    func prefix(_ session: SessionText, time: Timestamp, tag: StaticString, colour: Colour) {
        paint(&session.body, .dim)
        let stamp = "+" + Self.seconds(time.nanoseconds - session.info.start.nanoseconds)
        session.body.append(contentsOf: repeatElement(0x20, count: max(1, 10 - stamp.utf8.count)))
        session.body.append(contentsOf: stamp.utf8)
        paint(&session.body, .reset)
        session.body.appendASCII("  ")
        paint(&session.body, colour)
        session.body.appendASCII(tag)
    }

    /// Appends one line's content (without its line ending), escaped for display.
    func appendEscaped(_ content: UnsafeRawBufferPointer, to body: inout [UInt8]) {
        var index = 0
        let count = content.count
        while index < count {
            let byte = content[index]
            if byte >= 0x20, byte < 0x7F || byte == 0x09 {
                body.append(byte)
                index += 1
            } else if byte >= 0x80, case let length = [UInt8].utf8SequenceLength(content, at: index), length > 0 {
                body.append(contentsOf: content[index..<(index + length)])
                index += length
            } else if byte == 0x09 {
                body.append(byte)
                index += 1
            } else {
                body.append(contentsOf: ByteString.hexEscape(byte).utf8)
                index += 1
            }
        }
    }

    func appendFlags(_ flags: LineFlags, to session: SessionText) {
        guard !flags.isEmpty else { return }
        paint(&session.body, .marker)
        session.body.appendASCII("  [")
        session.body.append(contentsOf: flags.names.joined(separator: ", ").utf8)
        session.body.append(0x5D)
    }

    func endLine(_ session: SessionText) {
        paint(&session.body, .reset)
        session.body.append(0x0A)
    }

    /// Writes each line of `raw` with the tag.
    func appendLines(_ raw: UnsafeRawBufferPointer, session: SessionText, time: Timestamp, tag: StaticString, colour: Colour, flags: LineFlags) {
        var start = 0
        while start < raw.count {
            var end = start
            while end < raw.count, raw[end] != 0x0A { end += 1 }
            let next = min(end + 1, raw.count)
            prefix(session, time: time, tag: tag, colour: colour)
            appendEscaped(JSONTranscriptWriter.content(UnsafeRawBufferPointer(rebasing: raw[start..<next])), to: &session.body)
            if next == raw.count { appendFlags(flags, to: session) }
            endLine(session)
            start = next
        }
    }

    func marker(_ session: SessionText, time: Timestamp, _ text: String) {
        prefix(session, time: time, tag: "-- ", colour: .marker)
        session.body.append(contentsOf: text.utf8)
        endLine(session)
    }

    // MARK: SessionObserver

    public func sessionStarted(_ info: SessionInfo) {
        let session = SessionText(info: info)
        sessions[info.id] = session
        current = session
    }

    public func select(session id: Int) { current = sessions[id] }

    public func sessionEnded(_ info: SessionInfo, summary: SessionSummary, reason: SessionEndReason, time: Timestamp) {
        guard let session = sessions.removeValue(forKey: info.id) else { return }
        if current === session { current = nil }
        marker(session, time: time, reason.phrase)
        var header: [UInt8] = []
        paint(&header, .bold)
        header.append(contentsOf: "== session \(info.id): \(info.client) -> \(info.server), \(info.start.rfc3339), \(Self.seconds(time.nanoseconds - info.start.nanoseconds)) s (\(info.source))".utf8)
        if !info.handshakeSeen { header.append(contentsOf: " [began before the capture]".utf8) }
        paint(&header, .reset)
        header.append(0x0A)
        output.append(header)
        output.append(session.body)
        var footer: [UInt8] = []
        paint(&footer, .bold)
        footer.append(contentsOf: ("== summary: " + Self.summaryText(summary)).utf8)
        paint(&footer, .reset)
        footer.append(contentsOf: "\n\n".utf8)
        output.append(footer)
    }

    /// `from <a@b> to <c@d> (250), <e@f> (550); 1 message (345 bytes) -> 250; last reply 221`
    public static func summaryText(_ summary: SessionSummary) -> String {
        var parts: [String] = []
        if !summary.senders.isEmpty {
            var envelope = "from " + summary.senders.map { "<\($0)>" }.joined(separator: ", ")
            if !summary.recipients.isEmpty {
                envelope += " to " + summary.recipients.map { recipient in
                    "<\(recipient.address)>" + (recipient.replyCode.map { " (\($0))" } ?? "")
                }.joined(separator: ", ")
            }
            parts.append(envelope)
        }
        var messages = "\(summary.completedMessages) message" + (summary.completedMessages == 1 ? "" : "s")
        if summary.completedMessages > 0 { messages += " (\(summary.messageBytes) bytes)" }
        if !summary.messageReplyCodes.isEmpty { messages += " -> " + summary.messageReplyCodes.map(String.init).joined(separator: ", ") }
        parts.append(messages)
        if let mechanism = summary.authMechanism {
            parts.append("AUTH \(mechanism)" + (summary.authReplyCode.map { " -> \($0)" } ?? ""))
        }
        if let tls = summary.tls {
            parts.append((tls == .startTLS ? "STARTTLS" : "implicit TLS") + ", \(summary.encryptedClient)/\(summary.encryptedServer) encrypted bytes client/server")
        }
        if summary.gapBytes > 0 { parts.append("\(summary.gapBytes) bytes missing") }
        parts.append("last reply " + (summary.lastReplyCode.map(String.init) ?? "none"))
        return parts.joined(separator: "; ")
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
        session.lastDataTime = time
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
            appendEscaped(content, to: &session.body)
            endLine(session)
            if content.isEmpty { session.inHeaders = false }
        } else {
            session.bodyBytes += line.count
            session.bodyLines += 1
        }
    }

    public func messageEnd(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, size: Int, complete: Bool, time: Timestamp) {
        guard let session = current else { return }
        if !session.partialLine.isEmpty {
            let line = session.partialLine
            session.partialLine.removeAll(keepingCapacity: true)
            line.withUnsafeBytes { messageLine($0, session: session, time: session.lastDataTime) }
        }
        switch data {
        case .none:
            marker(session, time: time, "message \(message): \(size) bytes via \(transfer.name)" + (complete ? "" : ", incomplete"))
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

    public func fragment(_ raw: UnsafeRawBufferPointer, side: Side, time: Timestamp) {
        guard let session = current else { return }
        appendLines(raw, session: session, time: time, tag: side == .client ? "C? " : "S? ", colour: .marker, flags: [])
    }

    public func gap(side: Side, bytes: Int, time: Timestamp) {
        guard let session = current else { return }
        marker(session, time: time, "gap: \(bytes) \(side.name) bytes missing from the capture")
    }

    public func tlsStarted(_ mode: TLSMode, time: Timestamp) {
        guard let session = current else { return }
        marker(session, time: time, mode == .startTLS ? "TLS started (STARTTLS): the rest of the session is encrypted" : "implicit TLS: the session is encrypted from the start")
    }

    public func encrypted(side: Side, bytes: Int, time: Timestamp) {}
}
