@testable import SMTPCore

/// One observer callback, with its bytes copied out of the short-lived buffer.
enum Event: Equatable, CustomStringConvertible {
    case command(raw: [UInt8], verb: SMTPVerb, flags: LineFlags, secret: Range<Int>?)
    case reply(raw: [UInt8], lineCount: Int, code: Int?, context: ReplyContext, flags: LineFlags)
    case authResponse(raw: [UInt8], secret: Range<Int>?, flags: LineFlags)
    case messageData(raw: [UInt8], message: Int, transfer: MessageTransfer, atLineStart: Bool)
    case messageEnd(raw: [UInt8], message: Int, transfer: MessageTransfer, size: Int, complete: Bool)
    case fragment(raw: [UInt8], side: Side, secret: Bool)
    case gap(side: Side, bytes: Int)
    case tlsStarted(TLSMode)
    case encrypted(side: Side, bytes: Int)

    /// The side whose stream `raw` belongs to, and the bytes (nil for events without a `raw`).
    var rawBytes: (side: Side, bytes: [UInt8])? {
        switch self {
        case .command(let raw, _, _, _), .authResponse(let raw, _, _), .messageData(let raw, _, _, _),
             .messageEnd(let raw, _, _, _, _):
            (.client, raw)
        case .reply(let raw, _, _, _, _):
            (.server, raw)
        case .fragment(let raw, let side, _):
            (side, raw)
        case .gap, .tlsStarted, .encrypted:
            nil
        }
    }

    /// A compact, readable line: what the log assertions compare against.
    ///
    /// `C VERB`, `S code context (n lines)`, `A` auth response, `D<n>` message data, `E<n>` message end,
    /// `F` fragment, `G` gap, `TLS`, `X` encrypted; flags in brackets; secrets spelled out as `secret=...`.
    var description: String {
        func suffix(_ flags: LineFlags) -> String { flags.isEmpty ? "" : " [" + flags.names.joined(separator: ",") + "]" }
        func secretText(_ raw: [UInt8], _ secret: Range<Int>?) -> String {
            guard let secret else { return "" }
            return " secret=" + ByteString(raw[secret]).description
        }
        switch self {
        case .command(let raw, let verb, let flags, let secret):
            return "C \(verb.name)" + secretText(raw, secret) + suffix(flags)
        case .reply(_, let lineCount, let code, let context, let flags):
            let codeText = code.map(String.init) ?? "-"
            let label = context == .none ? "none" : context.label
            return "S \(codeText) \(label)" + (lineCount == 1 ? "" : " (\(lineCount) lines)") + suffix(flags)
        case .authResponse(let raw, let secret, let flags):
            return "A " + ByteString(SMTPDialogue.lineContentBytes(raw)).description + secretText(raw, secret) + suffix(flags)
        case .messageData(let raw, let message, let transfer, _):
            return "D\(message) \(transfer.name) " + ByteString(raw).description
        case .messageEnd(let raw, let message, let transfer, let size, let complete):
            return "E\(message) \(transfer.name) size=\(size)" + (complete ? "" : " incomplete") + (raw.isEmpty ? "" : " " + ByteString(raw).description)
        case .fragment(let raw, let side, let secret):
            return "F \(side.name) " + (secret ? "secret " : "") + ByteString(raw).description
        case .gap(let side, let bytes):
            return "G \(side.name) \(bytes)"
        case .tlsStarted(let mode):
            return "TLS \(mode)"
        case .encrypted(let side, let bytes):
            return "X \(side.name) \(bytes)"
        }
    }
}

extension SMTPDialogue {
    /// A line without its CR LF, as bytes.
    static func lineContentBytes(_ raw: [UInt8]) -> [UInt8] {
        var end = raw.count
        if end > 0, raw[end - 1] == 0x0A { end -= 1 }
        if end > 0, raw[end - 1] == 0x0D { end -= 1 }
        return Array(raw[0..<end])
    }
}

/// Records every callback as an ``Event``, copying the bytes.
final class RecordingObserver: SMTPDialogueObserver {
    private(set) var events: [Event] = []
    private(set) var times: [Timestamp] = []
    private(set) var tlsStates: [TLSState] = []

    func command(_ raw: UnsafeRawBufferPointer, verb: SMTPVerb, flags: LineFlags, secret: Range<Int>?, time: Timestamp) {
        record(.command(raw: Array(raw), verb: verb, flags: flags, secret: secret), time)
    }

    func reply(_ raw: UnsafeRawBufferPointer, lineCount: Int, code: Int?, context: ReplyContext, flags: LineFlags, time: Timestamp) {
        record(.reply(raw: Array(raw), lineCount: lineCount, code: code, context: context, flags: flags), time)
    }

    func authResponse(_ raw: UnsafeRawBufferPointer, secret: Range<Int>?, flags: LineFlags, time: Timestamp) {
        record(.authResponse(raw: Array(raw), secret: secret, flags: flags), time)
    }

    func messageData(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, atLineStart: Bool, time: Timestamp) {
        record(.messageData(raw: Array(raw), message: message, transfer: transfer, atLineStart: atLineStart), time)
    }

    func messageEnd(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, size: Int, complete: Bool, time: Timestamp) {
        record(.messageEnd(raw: Array(raw), message: message, transfer: transfer, size: size, complete: complete), time)
    }

    func fragment(_ raw: UnsafeRawBufferPointer, side: Side, secret: Bool, time: Timestamp) {
        record(.fragment(raw: Array(raw), side: side, secret: secret), time)
    }

    func gap(side: Side, bytes: Int, time: Timestamp) {
        record(.gap(side: side, bytes: bytes), time)
    }

    func tlsStarted(_ start: TLSStart, time: Timestamp) {
        tlsStates.append(start.state)
        record(.tlsStarted(start.mode), time)
    }

    func encrypted(side: Side, bytes: Int, time: Timestamp) {
        record(.encrypted(side: side, bytes: bytes), time)
    }

    private func record(_ event: Event, _ time: Timestamp) {
        events.append(event)
        times.append(time)
    }

    // MARK: Views

    /// All `raw` bytes of one side, concatenated in callback order.
    func raw(_ side: Side) -> [UInt8] {
        events.reduce(into: []) { out, event in
            if let pair = event.rawBytes, pair.side == side { out += pair.bytes }
        }
    }

    /// Bytes counted as encrypted for one side.
    func encryptedBytes(_ side: Side) -> Int {
        events.reduce(0) { total, event in
            if case .encrypted(side, let bytes) = event { total + bytes } else { total }
        }
    }

    /// Bytes reported missing for one side.
    func gapBytes(_ side: Side) -> Int {
        events.reduce(0) { total, event in
            if case .gap(side, let bytes) = event { total + bytes } else { total }
        }
    }

    /// Events with runs of message data (same message) and of encrypted counts (same side) merged,
    /// so that two runs that differ only in how the input was segmented compare equal.
    var normalizedEvents: [Event] {
        var out: [Event] = []
        for event in events {
            if let last = out.last {
                if case .messageData(let raw, let message, let transfer, let atLineStart) = last,
                   case .messageData(let more, let nextMessage, let nextTransfer, _) = event,
                   message == nextMessage, transfer == nextTransfer {
                    out[out.count - 1] = .messageData(raw: raw + more, message: message, transfer: transfer, atLineStart: atLineStart)
                    continue
                }
                if case .encrypted(let side, let bytes) = last, case .encrypted(let nextSide, let more) = event, side == nextSide {
                    out[out.count - 1] = .encrypted(side: side, bytes: bytes + more)
                    continue
                }
            }
            out.append(event)
        }
        return out
    }

    /// ``normalizedEvents`` as readable lines.
    var log: [String] { normalizedEvents.map(\.description) }

    /// The commands in order: verb and raw line.
    var commands: [(verb: SMTPVerb, raw: [UInt8])] {
        events.compactMap { if case .command(let raw, let verb, _, _) = $0 { (verb, raw) } else { nil } }
    }

    var verbs: [SMTPVerb] { commands.map(\.verb) }

    /// The replies in order: code, context, line count and flags.
    var replies: [(code: Int?, context: ReplyContext, lineCount: Int, flags: LineFlags, raw: [UInt8])] {
        events.compactMap {
            if case .reply(let raw, let lineCount, let code, let context, let flags) = $0 { (code, context, lineCount, flags, raw) } else { nil }
        }
    }

    var replyContexts: [ReplyContext] { replies.map(\.context) }

    /// The wire bytes of message `index` (dot-stuffed for DATA), concatenated.
    func wireMessage(_ index: Int) -> [UInt8] {
        events.reduce(into: []) { out, event in
            if case .messageData(let raw, index, _, _) = event { out += raw }
        }
    }

    /// The message bytes of message `index`: unstuffed for DATA, as sent for BDAT.
    ///
    /// Each DATA chunk is unstuffed with its own `atLineStart`, so a wrong `atLineStart` shows up here.
    func message(_ index: Int) -> [UInt8] {
        var out: [UInt8] = []
        for event in events {
            guard case .messageData(let raw, index, let transfer, let atLineStart) = event else { continue }
            if transfer == .data {
                raw.withUnsafeBytes { _ = DotStuffing.unstuff($0, atLineStart: atLineStart, into: &out) }
            } else {
                out += raw
            }
        }
        return out
    }

    /// The `messageEnd` events: message number, transfer, size, completeness and raw bytes.
    var messageEnds: [(message: Int, transfer: MessageTransfer, size: Int, complete: Bool, raw: [UInt8])] {
        events.compactMap {
            if case .messageEnd(let raw, let message, let transfer, let size, let complete) = $0 { (message, transfer, size, complete, raw) } else { nil }
        }
    }

    var fragments: [(side: Side, raw: [UInt8])] {
        events.compactMap { if case .fragment(let raw, let side, _) = $0 { (side, raw) } else { nil } }
    }

    var authResponses: [(raw: [UInt8], secret: Range<Int>?, flags: LineFlags)] {
        events.compactMap { if case .authResponse(let raw, let secret, let flags) = $0 { (raw, secret, flags) } else { nil } }
    }

    var tlsModes: [TLSMode] {
        events.compactMap { if case .tlsStarted(let mode) = $0 { mode } else { nil } }
    }
}
