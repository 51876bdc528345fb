import SMTPCore

/// Keeps every event the extractor reports, with copies of the bytes, for assertions.
final class RecordingObserver: SessionObserver {
    enum Event: Equatable {
        case command(session: Int, raw: [UInt8], verb: String, secret: Range<Int>?)
        case reply(session: Int, raw: [UInt8], code: Int?, context: String, flags: [String])
        case auth(session: Int, raw: [UInt8])
        case data(session: Int, raw: [UInt8], message: Int, atLineStart: Bool)
        case messageEnd(session: Int, raw: [UInt8], message: Int, size: Int, complete: Bool)
        case fragment(session: Int, raw: [UInt8], side: Side, secret: Bool)
        case gap(session: Int, side: Side, bytes: Int)
        case tls(session: Int, mode: TLSMode)
    }

    var sessions: [SessionInfo] = []
    var ended: [(info: SessionInfo, summary: SessionSummary, reason: SessionEndReason)] = []
    var events: [Event] = []
    var current = 0

    func sessionStarted(_ info: SessionInfo) { sessions.append(info) }
    func select(session id: Int) { current = id }
    func sessionEnded(_ info: SessionInfo, summary: SessionSummary, reason: SessionEndReason, time: Timestamp) {
        ended.append((info, summary, reason))
    }

    func command(_ raw: UnsafeRawBufferPointer, verb: SMTPVerb, flags: LineFlags, secret: Range<Int>?, time: Timestamp) {
        events.append(.command(session: current, raw: Array(raw), verb: verb.name, secret: secret))
    }
    func reply(_ raw: UnsafeRawBufferPointer, lineCount: Int, code: Int?, context: ReplyContext, flags: LineFlags, time: Timestamp) {
        events.append(.reply(session: current, raw: Array(raw), code: code, context: context.label, flags: flags.names))
    }
    func authResponse(_ raw: UnsafeRawBufferPointer, secret: Range<Int>?, flags: LineFlags, time: Timestamp) {
        events.append(.auth(session: current, raw: Array(raw)))
    }
    func messageData(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, atLineStart: Bool, time: Timestamp) {
        events.append(.data(session: current, raw: Array(raw), message: message, atLineStart: atLineStart))
    }
    func messageEnd(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, size: Int, complete: Bool, time: Timestamp) {
        events.append(.messageEnd(session: current, raw: Array(raw), message: message, size: size, complete: complete))
    }
    func fragment(_ raw: UnsafeRawBufferPointer, side: Side, secret: Bool, time: Timestamp) {
        events.append(.fragment(session: current, raw: Array(raw), side: side, secret: secret))
    }
    func gap(side: Side, bytes: Int, time: Timestamp) { events.append(.gap(session: current, side: side, bytes: bytes)) }
    func tlsStarted(_ start: TLSStart, time: Timestamp) { events.append(.tls(session: current, mode: start.mode)) }
    func encrypted(side: Side, bytes: Int, time: Timestamp) {}

    // MARK: Views for assertions

    /// The bytes of one direction of a session, in order, as the events carry them.
    func stream(session: Int, side: Side) -> [UInt8] {
        events.flatMap { event -> [UInt8] in
            switch event {
            case .command(session, let raw, _, _), .auth(session, let raw), .data(session, let raw, _, _), .messageEnd(session, let raw, _, _, _):
                side == .client ? raw : []
            case .reply(session, let raw, _, _, _):
                side == .server ? raw : []
            case .fragment(session, let raw, side, _):
                raw
            default:
                []
            }
        }
    }

    /// Command lines of a session (without line endings), as text.
    func commands(session: Int) -> [String] {
        events.compactMap {
            if case .command(session, let raw, _, _) = $0 { return Self.line(raw) }
            if case .auth(session, let raw) = $0 { return Self.line(raw) }
            return nil
        }
    }

    /// Reply lines of a session (every line of multi-line replies), as text.
    func replyLines(session: Int) -> [String] {
        events.flatMap { event -> [String] in
            guard case .reply(session, let raw, _, _, _) = event else { return [] }
            return raw.split(separator: 0x0A).map { Self.line(Array($0)) }
        }
    }

    func replies(session: Int) -> [(code: Int?, context: String)] {
        events.compactMap { if case .reply(session, _, let code, let context, _) = $0 { (code, context) } else { nil } }
    }

    /// The unstuffed message bytes of each message of a session.
    func messages(session: Int) -> [[UInt8]] {
        var result: [Int: [UInt8]] = [:]
        var isBDAT: [Int: Bool] = [:]
        for event in events {
            if case .command(session, _, "BDAT", _) = event { isBDAT[-1] = true }
            if case .data(session, let raw, let message, let atLineStart) = event {
                if isBDAT[-1] == true {
                    result[message, default: []] += raw
                } else {
                    result[message, default: []] += DotStuffing.unstuff(raw, atLineStart: atLineStart)
                }
            }
        }
        return result.keys.sorted().map { result[$0]! }
    }

    func gaps(session: Int) -> [(Side, Int)] {
        events.compactMap { if case .gap(session, let side, let bytes) = $0 { (side, bytes) } else { nil } }
    }

    static func line(_ raw: [UInt8]) -> String {
        var bytes = raw
        if bytes.last == 0x0A { bytes.removeLast() }
        if bytes.last == 0x0D { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }
}
