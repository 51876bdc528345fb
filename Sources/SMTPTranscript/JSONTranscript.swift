import SMTPCore

/// Writes dialogue events as JSON Lines (see the README): one object per
/// event, in the order the events happened, each with `session`, `time`, `type`, and for bytes on
/// the wire `from` and `raw` (base64 of the exact bytes).
public final class JSONTranscriptWriter: SessionObserver {
    let output: ByteOutput
    let out: ByteWriter
    let showSecrets: Bool
    /// Writes out the events so far whenever a session ends, instead of when the buffer fills
    /// (a live capture).
    public var flushesEachSession = false
    var session = 0

    public init(output: ByteOutput, showSecrets: Bool = false) {
        self.output = output
        self.out = output.buffer
        self.showSecrets = showSecrets
    }

    // MARK: Building a line

    var rfc3339 = RFC3339Writer()

    @inline(__always)
    func appendTime(_ time: Timestamp) { rfc3339.append(time, to: out) }

    @inline(__always)
    func begin(_ type: StaticString, time: Timestamp, from side: Side?) {
        out.append("{\"session\":")
        out.appendDecimal(session)
        out.append(",\"time\":\"")
        appendTime(time)
        out.append("\",\"type\":\"")
        out.append(type)
        out.append(0x22)
        if let side {
            out.append(side == .client ? ",\"from\":\"client\"" : ",\"from\":\"server\"")
        }
    }

    @inline(__always)
    func field(_ name: StaticString) {
        out.append(",\"")
        out.append(name)
        out.append("\":")
    }

    func string(_ name: StaticString, _ value: String) {
        field(name)
        stringValue(value)
    }

    func bytesString(_ name: StaticString, _ value: UnsafeRawBufferPointer) {
        field(name)
        out.append(0x22)
        out.appendJSONEscaped(value)
        out.append(0x22)
    }

    func integer(_ name: StaticString, _ value: Int) {
        field(name)
        out.appendDecimal(value)
    }

    func optionalInteger(_ name: StaticString, _ value: Int?) {
        field(name)
        if let value { out.appendDecimal(value) } else { out.append("null") }
    }

    func raw(_ bytes: UnsafeRawBufferPointer) {
        field("raw")
        out.append(0x22)
        out.appendBase64(bytes)
        out.append(0x22)
    }

    /// `flags` is always written, empty when the line broke no rule (and, from a scenario, was
    /// not sent by a proxy: `by_proxy`).
    func flags(_ flags: LineFlags) {
        field("flags")
        out.append(0x5B)
        for (index, name) in flags.names.enumerated() {
            if index > 0 { out.append(0x2C) }
            out.append(0x22)
            out.append(name)
            out.append(0x22)
        }
        out.append(0x5D)
    }

    @inline(__always)
    func end() {
        out.append("}\n")
        output.flushIfFull()
    }

    /// The bytes to show for a line that may hold a secret.
    func withVisible(_ raw: UnsafeRawBufferPointer, secret: Range<Int>?, _ body: (UnsafeRawBufferPointer, Bool) -> Void) {
        if let secret, !showSecrets {
            Secrets.redact(raw, secret: secret).withUnsafeBytes { body($0, true) }
        } else {
            body(raw, false)
        }
    }

    static func content(_ raw: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer { SMTPLine.content(raw) }

    // MARK: SessionObserver

    public func sessionStarted(_ info: SessionInfo) {
        session = info.id
        begin("session_start", time: info.start, from: nil)
        string("client", info.client)
        string("server", info.server)
        string("file", info.source)
        field("handshake")
        out.append(info.handshakeSeen ? "true" : "false")
        end()
    }

    public func select(session id: Int) { session = id }

    public func sessionEnded(_ info: SessionInfo, summary: SessionSummary, reason: SessionEndReason, time: Timestamp) {
        session = info.id
        begin("session_end", time: time, from: nil)
        field("reason")
        out.append(0x22)
        out.append(reason.name)
        out.append(0x22)
        field("duration")
        TextTranscriptRenderer.appendSeconds(time.nanoseconds - info.start.nanoseconds, to: out)
        addresses("mail_from", summary.senders)
        addresses("rcpt_to", summary.recipients)
        integer("messages", summary.completedMessages)
        integer("message_bytes", summary.messageBytes)
        optionalInteger("last_reply", summary.lastReplyCode)
        field("auth")
        if let mechanism = summary.authMechanism {
            out.append("{\"mechanism\":")
            stringValue(mechanism)
            out.append(",\"code\":")
            if let code = summary.authReplyCode { out.appendDecimal(code) } else { out.append("null") }
            out.append(0x7D)
        } else {
            out.append("null")
        }
        field("tls")
        if let tls = summary.tls { stringValue(tls.name) } else { out.append("null") }
        field("tls_state")
        if let state = summary.tlsState { stringValue(state.name) } else { out.append("null") }
        out.append(",\"encrypted_bytes\":{\"client\":")
        out.appendDecimal(summary.encryptedClient)
        out.append(",\"server\":")
        out.appendDecimal(summary.encryptedServer)
        out.append(0x7D)
        integer("gap_bytes", summary.gapBytes)
        end()
        if flushesEachSession { output.flush() }
    }

    /// `[{"address": ..., "code": ...}, ...]`
    func addresses(_ name: StaticString, _ list: [EnvelopeAddress]) {
        field(name)
        out.append(0x5B)
        for (index, entry) in list.enumerated() {
            if index > 0 { out.append(0x2C) }
            out.append("{\"address\":\"")
            entry.address.bytes.withUnsafeBytes { out.appendJSONEscaped($0) }
            out.append("\",\"code\":")
            if let code = entry.replyCode { out.appendDecimal(code) } else { out.append("null") }
            out.append(0x7D)
        }
        out.append(0x5D)
    }

    public func command(_ raw: UnsafeRawBufferPointer, verb: SMTPVerb, flags: LineFlags, secret: Range<Int>?, time: Timestamp) {
        begin("command", time: time, from: .client)
        withVisible(raw, secret: secret) { visible, redacted in
            self.raw(visible)
            field("verb")
            out.append(0x22)
            verb.bytes.withUnsafeBytes { out.appendJSONEscaped($0) }
            out.append(0x22)
            bytesString("text", Self.content(visible))
            out.append(redacted ? ",\"redacted\":true" : ",\"redacted\":false")
        }
        self.flags(flags)
        end()
    }

    public func reply(_ raw: UnsafeRawBufferPointer, lineCount: Int, code: Int?, context: ReplyContext, flags: LineFlags, time: Timestamp) {
        begin("reply", time: time, from: .server)
        self.raw(raw)
        optionalInteger("code", code)
        field("lines")
        out.append(0x5B)
        // `lines` holds each line's text after its code, as the reply grammar reads it.
        var start = 0
        var firstText: ByteString?
        while start < raw.count {
            var end = start
            while end < raw.count, raw[end] != 0x0A { end += 1 }
            let next = min(end + 1, raw.count)
            if start > 0 { out.append(0x2C) }
            out.append(0x22)
            let line = SMTPReplyLine(line: UnsafeRawBufferPointer(rebasing: raw[start..<next]))
            if firstText == nil { firstText = line.text }
            line.text.bytes.withUnsafeBytes { out.appendJSONEscaped($0) }
            out.append(0x22)
            start = next
        }
        out.append(0x5D)
        if code != nil, let text = firstText, let status = EnhancedStatusCode(prefixOf: text.bytes) {
            string("enhanced_code", status.description)
        }
        if context != .none { string("answers", context.label) }
        self.flags(flags)
        end()
    }

    public func authResponse(_ raw: UnsafeRawBufferPointer, secret: Range<Int>?, flags: LineFlags, time: Timestamp) {
        begin("auth", time: time, from: .client)
        withVisible(raw, secret: secret) { visible, redacted in
            self.raw(visible)
            bytesString("text", Self.content(visible))
            out.append(redacted ? ",\"redacted\":true" : ",\"redacted\":false")
        }
        self.flags(flags)
        end()
    }

    public func messageData(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, atLineStart: Bool, time: Timestamp) {
        begin("data", time: time, from: .client)
        self.raw(raw)
        integer("message", message)
        out.append(transfer == .data ? ",\"via\":\"DATA\"" : ",\"via\":\"BDAT\"")
        end()
    }

    public func messageEnd(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, size: Int, complete: Bool, time: Timestamp) {
        begin("message_end", time: time, from: .client)
        if !raw.isEmpty { self.raw(raw) }
        integer("message", message)
        out.append(transfer == .data ? ",\"via\":\"DATA\"" : ",\"via\":\"BDAT\"")
        integer("size", size)
        out.append(complete ? ",\"complete\":true" : ",\"complete\":false")
        end()
    }

    public func fragment(_ raw: UnsafeRawBufferPointer, side: Side, secret: Bool, time: Timestamp) {
        begin("fragment", time: time, from: side)
        withVisible(raw, secret: secret ? 0..<Self.content(raw).count : nil) { visible, redacted in
            self.raw(visible)
            bytesString("text", Self.content(visible))
            out.append(redacted ? ",\"redacted\":true" : ",\"redacted\":false")
        }
        end()
    }

    public func gap(side: Side, bytes: Int, time: Timestamp) {
        begin("gap", time: time, from: side)
        integer("bytes", bytes)
        end()
    }

    public func tlsStarted(_ start: TLSStart, time: Timestamp) {
        begin("tls_start", time: time, from: nil)
        string("mode", start.mode.name)
        string("state", start.state.name)
        if case .decrypted(let version, let suite) = start.state {
            field("version")
            if let version { stringValue(version) } else { out.append("null") }
            field("cipher_suite")
            if let suite { stringValue(suite) } else { out.append("null") }
        }
        end()
    }

    /// A JSON string value (the field name already written).
    func stringValue(_ value: String) {
        out.append(0x22)
        var value = value
        value.withUTF8 { out.appendJSONEscaped(UnsafeRawBufferPointer($0)) }
        out.append(0x22)
    }

    public func encrypted(side: Side, bytes: Int, time: Timestamp) {}

    public func tlsUndecryptable(side: Side?, reason: String, time: Timestamp) {
        begin("tls_undecryptable", time: time, from: side)
        string("reason", reason)
        end()
    }
}
