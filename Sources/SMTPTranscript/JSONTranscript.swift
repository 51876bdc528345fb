import SMTPCore

/// Writes dialogue events as JSON Lines (see CONVENTIONS.md and the README): one object per
/// event, in the order the events happened, each with `session`, `time`, `type`, and for bytes on
/// the wire `from` and `raw` (base64 of the exact bytes).
public final class JSONTranscriptWriter: SessionObserver {
    let output: ByteOutput
    let showSecrets: Bool
    var session = 0
    var line: [UInt8] = []

    public init(output: ByteOutput, showSecrets: Bool = false) {
        self.output = output
        self.showSecrets = showSecrets
        line.reserveCapacity(4096)
    }

    // MARK: Building a line

    /// The RFC 3339 text up to the seconds' fraction changes once a second: it is kept and reused.
    var cachedSecond = Int64.min
    var cachedPrefix: [UInt8] = []

    @inline(__always)
    func appendTime(_ time: Timestamp) {
        let second = time.seconds
        if second != cachedSecond {
            cachedPrefix.removeAll(keepingCapacity: true)
            Timestamp(seconds: second, nanoseconds: 0).appendRFC3339(to: &cachedPrefix)
            cachedPrefix.removeLast(8)  // "000000Z" and the dot stay out: ".ffffffZ" follows
            cachedSecond = second
        }
        line.append(contentsOf: cachedPrefix)
        var micros = Int((time.nanoseconds - second * 1_000_000_000) / 1000)
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0x2E, 0, 0, 0, 0, 0, 0, 0x5A)
        withUnsafeMutableBytes(of: &digits) { bytes in
            for index in stride(from: 6, through: 1, by: -1) {
                bytes[index] = UInt8(0x30 + micros % 10)
                micros /= 10
            }
            line.appendBytes(UnsafeRawBufferPointer(bytes))
        }
    }

    @inline(__always)
    func begin(_ type: StaticString, time: Timestamp, from side: Side?) {
        line.removeAll(keepingCapacity: true)
        line.appendASCII("{\"session\":")
        line.appendDecimal(session)
        line.appendASCII(",\"time\":\"")
        appendTime(time)
        line.appendASCII("\",\"type\":\"")
        line.appendASCII(type)
        line.append(0x22)
        if let side {
            line.appendASCII(side == .client ? ",\"from\":\"client\"" : ",\"from\":\"server\"")
        }
    }

    @inline(__always)
    func field(_ name: StaticString) {
        line.appendASCII(",\"")
        line.appendASCII(name)
        line.appendASCII("\":")
    }

    func string(_ name: StaticString, _ value: String) {
        field(name)
        line.append(0x22)
        var value = value
        value.withUTF8 { line.appendJSONEscaped(UnsafeRawBufferPointer($0)) }
        line.append(0x22)
    }

    func bytesString(_ name: StaticString, _ value: UnsafeRawBufferPointer) {
        field(name)
        line.append(0x22)
        line.appendJSONEscaped(value)
        line.append(0x22)
    }

    func integer(_ name: StaticString, _ value: Int) {
        field(name)
        line.appendDecimal(value)
    }

    func raw(_ bytes: UnsafeRawBufferPointer) {
        field("raw")
        line.append(0x22)
        Base64.append(bytes, to: &line)
        line.append(0x22)
    }

    func flags(_ flags: LineFlags) {
        guard !flags.isEmpty else { return }
        field("flags")
        line.append(0x5B)
        for (index, name) in flags.names.enumerated() {
            if index > 0 { line.append(0x2C) }
            line.append(0x22)
            line.append(contentsOf: name.utf8)
            line.append(0x22)
        }
        line.append(0x5D)
    }

    @inline(__always)
    func end() {
        line.appendASCII("}\n")
        line.withUnsafeBytes { output.append($0) }
    }

    /// The bytes to show for a line that may hold a secret.
    func withVisible(_ raw: UnsafeRawBufferPointer, secret: Range<Int>?, _ body: (UnsafeRawBufferPointer, Bool) -> Void) {
        if let secret, !showSecrets {
            Secrets.redact(raw, secret: secret).withUnsafeBytes { body($0, true) }
        } else {
            body(raw, false)
        }
    }

    static func content(_ raw: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var end = raw.count
        if end > 0, raw[end - 1] == 0x0A { end -= 1 }
        if end > 0, raw[end - 1] == 0x0D { end -= 1 }
        return UnsafeRawBufferPointer(rebasing: raw[0..<end])
    }

    // MARK: SessionObserver

    public func sessionStarted(_ info: SessionInfo) {
        session = info.id
        begin("session_start", time: info.start, from: nil)
        string("client", info.client)
        string("server", info.server)
        string("file", info.source)
        field("handshake")
        line.appendASCII(info.handshakeSeen ? "true" : "false")
        end()
    }

    public func select(session id: Int) { session = id }

    public func sessionEnded(_ info: SessionInfo, summary: SessionSummary, reason: SessionEndReason, time: Timestamp) {
        session = info.id
        begin("session_end", time: time, from: nil)
        string("reason", reason.name)
        field("duration")
        line.append(contentsOf: Array(TextTranscriptRenderer.seconds(time.nanoseconds - info.start.nanoseconds).utf8))
        field("mail_from")
        line.append(0x5B)
        for (index, sender) in summary.senders.enumerated() {
            if index > 0 { line.append(0x2C) }
            line.append(0x22)
            sender.bytes.withUnsafeBytes { line.appendJSONEscaped($0) }
            line.append(0x22)
        }
        line.append(0x5D)
        field("rcpt_to")
        line.append(0x5B)
        for (index, recipient) in summary.recipients.enumerated() {
            if index > 0 { line.append(0x2C) }
            line.appendASCII("{\"address\":\"")
            recipient.address.bytes.withUnsafeBytes { line.appendJSONEscaped($0) }
            line.appendASCII("\",\"code\":")
            if let code = recipient.replyCode { line.appendDecimal(code) } else { line.appendASCII("null") }
            line.append(0x7D)
        }
        line.append(0x5D)
        integer("messages", summary.completedMessages)
        integer("message_bytes", summary.messageBytes)
        field("last_reply")
        if let code = summary.lastReplyCode { line.appendDecimal(code) } else { line.appendASCII("null") }
        if let tls = summary.tls { string("tls", tls == .startTLS ? "starttls" : "implicit") }
        if summary.tls != nil {
            line.appendASCII(",\"encrypted_bytes\":{\"client\":")
            line.appendDecimal(summary.encryptedClient)
            line.appendASCII(",\"server\":")
            line.appendDecimal(summary.encryptedServer)
            line.append(0x7D)
        }
        if summary.gapBytes > 0 { integer("gap_bytes", summary.gapBytes) }
        end()
    }

    public func command(_ raw: UnsafeRawBufferPointer, verb: SMTPVerb, flags: LineFlags, secret: Range<Int>?, time: Timestamp) {
        begin("command", time: time, from: .client)
        withVisible(raw, secret: secret) { visible, redacted in
            self.raw(visible)
            string("verb", verb.name)
            bytesString("text", Self.content(visible))
            if redacted { line.appendASCII(",\"redacted\":true") }
        }
        self.flags(flags)
        end()
    }

    public func reply(_ raw: UnsafeRawBufferPointer, lineCount: Int, code: Int?, context: ReplyContext, flags: LineFlags, time: Timestamp) {
        begin("reply", time: time, from: .server)
        self.raw(raw)
        field("code")
        if let code { line.appendDecimal(code) } else { line.appendASCII("null") }
        field("lines")
        line.append(0x5B)
        var start = 0
        var first = true
        while start < raw.count {
            var end = start
            while end < raw.count, raw[end] != 0x0A { end += 1 }
            let next = min(end + 1, raw.count)
            if !first { line.append(0x2C) }
            first = false
            line.append(0x22)
            var text = UnsafeRawBufferPointer(rebasing: raw[start..<next])
            text = Self.content(text)
            // Drop the code and its separator: `lines` holds the reply's text.
            if code != nil, text.count >= 3 {
                text = UnsafeRawBufferPointer(rebasing: text[min(text.count, (text.count > 3 && (text[3] == 0x20 || text[3] == 0x2D)) ? 4 : 3)...])
            }
            line.appendJSONEscaped(text)
            line.append(0x22)
            start = next
        }
        line.append(0x5D)
        if code != nil, let status = EnhancedStatusCode(prefixOf: Self.firstLineText(raw)) {
            string("enhanced_code", status.description)
        }
        if context != .none { string("answers", context.label) }
        self.flags(flags)
        end()
    }

    static func firstLineText(_ raw: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        guard raw.count > 4 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        var end = 4
        while end < raw.count, raw[end] != 0x0D, raw[end] != 0x0A { end += 1 }
        return UnsafeRawBufferPointer(rebasing: raw[4..<end])
    }

    public func authResponse(_ raw: UnsafeRawBufferPointer, secret: Range<Int>?, flags: LineFlags, time: Timestamp) {
        begin("auth", time: time, from: .client)
        withVisible(raw, secret: secret) { visible, redacted in
            self.raw(visible)
            bytesString("text", Self.content(visible))
            if redacted { line.appendASCII(",\"redacted\":true") }
        }
        self.flags(flags)
        end()
    }

    public func messageData(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, atLineStart: Bool, time: Timestamp) {
        begin("data", time: time, from: .client)
        self.raw(raw)
        integer("message", message)
        line.appendASCII(transfer == .data ? ",\"via\":\"DATA\"" : ",\"via\":\"BDAT\"")
        end()
    }

    public func messageEnd(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, size: Int, complete: Bool, time: Timestamp) {
        begin("message_end", time: time, from: .client)
        if !raw.isEmpty { self.raw(raw) }
        integer("message", message)
        line.appendASCII(transfer == .data ? ",\"via\":\"DATA\"" : ",\"via\":\"BDAT\"")
        integer("size", size)
        line.appendASCII(complete ? ",\"complete\":true" : ",\"complete\":false")
        end()
    }

    public func fragment(_ raw: UnsafeRawBufferPointer, side: Side, time: Timestamp) {
        begin("fragment", time: time, from: side)
        self.raw(raw)
        bytesString("text", Self.content(raw))
        end()
    }

    public func gap(side: Side, bytes: Int, time: Timestamp) {
        begin("gap", time: time, from: side)
        integer("bytes", bytes)
        end()
    }

    public func tlsStarted(_ mode: TLSMode, time: Timestamp) {
        begin("tls_start", time: time, from: nil)
        string("mode", mode == .startTLS ? "starttls" : "implicit")
        end()
    }

    public func encrypted(side: Side, bytes: Int, time: Timestamp) {}
}
