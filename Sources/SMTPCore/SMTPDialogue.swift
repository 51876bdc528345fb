import CSMTPScan
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One side of an SMTP connection.
public enum Side: Sendable, Hashable {
    case client, server

    public var name: String { self == .client ? "client" : "server" }
}

/// How TLS began on a connection.
public enum TLSMode: Sendable, Hashable {
    /// RFC 3207: after `C: STARTTLS` / `S: 220 ...`.
    case startTLS
    /// SMTPS (RFC 8314): TLS from the first byte, usually on port 465.
    case implicit
}

/// How a message travelled: DATA (dot-stuffed, RFC 5321) or BDAT chunks (RFC 3030).
public enum MessageTransfer: Sendable, Hashable {
    case data, bdat

    public var name: String { self == .data ? "DATA" : "BDAT" }
}

/// Ways in which a line breaks the rules. Such lines are kept byte for byte and flagged.
public struct LineFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Ends in LF without CR.
    public static let bareLF = LineFlags(rawValue: 1 << 0)
    /// Longer than the RFC 5321 limit for its kind of line (see ``SMTPLimits``).
    public static let overLength = LineFlags(rawValue: 1 << 1)
    /// The stream ended (or a gap or the length cap came) before the line's LF.
    public static let unterminated = LineFlags(rawValue: 1 << 2)
    /// A reply code followed by neither space nor hyphen: `250OK`.
    public static let missingSeparator = LineFlags(rawValue: 1 << 3)
    /// A server line that does not start with a reply code.
    public static let notAReply = LineFlags(rawValue: 1 << 4)
    /// A reply with no command waiting for it.
    public static let unsolicited = LineFlags(rawValue: 1 << 5)
    /// A command whose argument does not parse (e.g. `BDAT -1`).
    public static let malformed = LineFlags(rawValue: 1 << 6)
    /// The lines of one multi-line reply carry different codes.
    public static let mixedCodes = LineFlags(rawValue: 1 << 7)

    /// Names for JSON and transcripts, in a fixed order.
    public var names: [String] {
        var names: [String] = []
        if contains(.bareLF) { names.append("bare_lf") }
        if contains(.overLength) { names.append("over_length") }
        if contains(.unterminated) { names.append("unterminated") }
        if contains(.missingSeparator) { names.append("no_space_after_code") }
        if contains(.notAReply) { names.append("not_a_reply") }
        if contains(.unsolicited) { names.append("unsolicited") }
        if contains(.malformed) { names.append("malformed") }
        if contains(.mixedCodes) { names.append("mixed_codes") }
        return names
    }
}

/// What a reply answers.
public enum ReplyContext: Sendable, Hashable {
    /// The opening `220` (or `421`/`554`) of the session.
    case greeting
    case command(SMTPVerb)
    /// The reply after the message content of DATA (`250 queued as ...`).
    case message
    /// A reply during an AUTH exchange after a client response.
    case authResponse
    /// No command was waiting: an unsolicited reply (`421 timeout`), or the capture began mid-session.
    case none

    public var label: String {
        switch self {
        case .greeting: "greeting"
        case .command(let verb): verb.name
        case .message: "message"
        case .authResponse: "auth"
        case .none: ""
        }
    }
}

/// Receives what ``SMTPDialogue`` finds in the byte streams.
///
/// `raw` buffers are only valid during the call. Each byte of each direction is passed in exactly
/// one `raw` (up to TLS), so concatenating them gives back the stream.
public protocol SMTPDialogueObserver: AnyObject {
    /// A client command line. `secret` is the byte range (within `raw`) of an AUTH initial response.
    func command(_ raw: UnsafeRawBufferPointer, verb: SMTPVerb, flags: LineFlags, secret: Range<Int>?, time: Timestamp)
    /// A complete reply of `lineCount` lines.
    func reply(_ raw: UnsafeRawBufferPointer, lineCount: Int, code: Int?, context: ReplyContext, flags: LineFlags, time: Timestamp)
    /// A client response line within an AUTH exchange; `secret` is its range within `raw`.
    func authResponse(_ raw: UnsafeRawBufferPointer, secret: Range<Int>?, flags: LineFlags, time: Timestamp)
    /// Bytes of message `message` (1-based within the session) as sent on the wire.
    /// For DATA they are dot-stuffed; `atLineStart` tells whether `raw` begins a line.
    func messageData(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, atLineStart: Bool, time: Timestamp)
    /// The end of a message: `raw` is the `.` line for DATA and empty for BDAT. `complete` is
    /// `false` when the stream ended inside the message.
    func messageEnd(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, size: Int, complete: Bool, time: Timestamp)
    /// Bytes that cannot be read as a line: the tail of a line cut by a gap, up to the next LF.
    func fragment(_ raw: UnsafeRawBufferPointer, side: Side, time: Timestamp)
    /// `bytes` bytes of `side` are missing from the capture.
    func gap(side: Side, bytes: Int, time: Timestamp)
    func tlsStarted(_ mode: TLSMode, time: Timestamp)
    /// Encrypted bytes, counted and not parsed.
    func encrypted(side: Side, bytes: Int, time: Timestamp)
}

/// What one session did, gathered while its dialogue is read.
public struct SessionSummary: Sendable, Hashable {
    public struct Recipient: Sendable, Hashable {
        public var address: ByteString
        public var replyCode: Int?
    }

    /// The reverse-path of each MAIL command, in order.
    public var senders: [ByteString] = []
    public var recipients: [Recipient] = []
    public var completedMessages = 0
    public var messageBytes = 0
    /// The reply code that ended each message (`250` queued, `554` rejected, ...).
    public var messageReplyCodes: [Int] = []
    public var lastReplyCode: Int?
    public var quitSent = false
    public var authMechanism: String?
    public var authReplyCode: Int?
    public var tls: TLSMode?
    public var encryptedBytes: (client: Int, server: Int) { (encryptedClient, encryptedServer) }
    public var encryptedClient = 0
    public var encryptedServer = 0
    public var gapBytes = 0

    public init() {}
}

/// The SMTP dialogue state machine: reads the two byte streams of one session, in the order
/// their bytes were sent, and reports commands, replies, message data, AUTH and TLS.
///
/// It never does I/O and never fails: what breaks the grammar is flagged and kept. Replies are
/// paired with commands strictly in order (RFC 2920 PIPELINING), so the replies to a pipelined
/// MAIL and RCPT are not mistaken for the answer to DATA.
///
/// ```
/// C: DATA
/// S: 354 go ahead
/// C: ..a line starting with a dot
/// C: .
/// S: 250 queued
/// ```
public struct SMTPDialogue {
    enum ClientMode: Equatable {
        case command
        /// DATA was sent; waiting for 354.
        case awaitingDataReply
        case data
        case bdat(remaining: Int, last: Bool)
        /// AUTH was sent; `expectingResponse` once a 334 challenge came.
        case auth(expectingResponse: Bool)
        case awaitingTLSReply
        case encrypted
    }

    struct Pending {
        var context: ReplyContext
        /// Index into ``SessionSummary/recipients`` for RCPT.
        var recipient: Int = -1
        /// For `BDAT ... LAST`: its reply is the verdict on the message.
        var endsMessage = false
    }

    public private(set) var summary = SessionSummary()

    var clientMode = ClientMode.command
    var serverEncrypted = false
    var clientSeenBytes = false
    var commandSeen = false
    var serverSeenBytes = false
    /// After a gap, bytes up to the next LF are a fragment.
    var clientResync = false
    var serverResync = false

    var clientLine: [UInt8] = []
    var serverLine: [UInt8] = []
    var replyBuffer: [UInt8] = []
    var replyLineCount = 0
    var replyCode: Int?
    var replyFlags = LineFlags()
    var replyTime = Timestamp(nanoseconds: 0)

    var pending: [Pending] = []
    var pendingHead = 0

    var messageIndex = 0
    var messageSize = 0
    var messageOpen = false
    var messageTransfer = MessageTransfer.data
    var dataAtLineStart = true
    /// Holds `.` or `.\r` at the end of a segment in DATA mode until we know whether it ends the message.
    var dataHold: [UInt8] = []

    /// Whether the bytes after TLS starts are given in the clear (a proxy or a replay server sees
    /// them decrypted; a capture does not).
    let tlsIsDecrypted: Bool

    /// - Parameter expectGreeting: `false` when the capture began after the session started, so
    ///   the first reply is not taken for the greeting.
    /// - Parameter tlsIsDecrypted: `true` when the caller passes the decrypted bytes after TLS
    ///   starts: TLS is then marked and parsing goes on (RFC 3207: the client starts afresh with EHLO).
    public init(expectGreeting: Bool = true, tlsIsDecrypted: Bool = false) {
        self.tlsIsDecrypted = tlsIsDecrypted
        // No buffers are reserved: most lines are read in place, and captures hold many sessions.
        if expectGreeting { pending.append(Pending(context: .greeting)) }
    }

    /// Whether both directions are encrypted (nothing more will be parsed).
    public var isEncrypted: Bool { clientMode == .encrypted && serverEncrypted }

    // MARK: Input

    /// Feeds the next in-order bytes of one side.
    public mutating func receive(_ bytes: UnsafeRawBufferPointer, from side: Side, time: Timestamp, observer: some SMTPDialogueObserver) {
        guard !bytes.isEmpty else { return }
        if side == .client {
            receiveClient(bytes, time: time, observer: observer)
        } else {
            receiveServer(bytes, time: time, observer: observer)
        }
    }

    /// Reports that `count` bytes of one side are missing; parsing resumes at the next line.
    public mutating func receiveGap(_ count: Int, from side: Side, time: Timestamp, observer: some SMTPDialogueObserver) {
        guard count > 0 else { return }
        summary.gapBytes += count
        if side == .client {
            if clientMode == .encrypted { summary.encryptedClient += count; observer.encrypted(side: .client, bytes: count, time: time); return }
            flushClientLine(time: time, observer: observer)
            if clientMode == .data { flushDataHold(time: time, observer: observer) }
            observer.gap(side: .client, bytes: count, time: time)
            switch clientMode {
            case .bdat(let remaining, let last):
                if count < remaining {
                    clientMode = .bdat(remaining: remaining - count, last: last)
                    messageSize += count
                } else {
                    messageSize += remaining
                    finishChunk(last: last, time: time, observer: observer)
                    // A gap that ends exactly at the chunk's end leaves us at the next command.
                    clientResync = count > remaining
                }
            case .data:
                dataAtLineStart = false
            case .awaitingDataReply:
                // The client does not wait long after DATA: what follows the gap is message data.
                beginMessage(.data, time: time, observer: observer)
                dataAtLineStart = false
            default:
                clientResync = true
            }
        } else {
            if serverEncrypted { summary.encryptedServer += count; observer.encrypted(side: .server, bytes: count, time: time); return }
            flushReply(extraFlags: .unterminated, time: time, observer: observer)
            observer.gap(side: .server, bytes: count, time: time)
            serverResync = true
        }
    }

    /// Ends the session: whatever is buffered is reported, flagged `unterminated`.
    public mutating func finish(time: Timestamp, observer: some SMTPDialogueObserver) {
        if messageOpen {
            flushDataHold(time: time, observer: observer)
            observer.messageEnd(UnsafeRawBufferPointer(start: nil, count: 0), message: messageIndex,
                                transfer: messageTransfer, size: messageSize, complete: false, time: time)
            messageOpen = false
            if clientMode != .encrypted { clientMode = .command }
        }
        flushClientLine(time: time, observer: observer)
        flushReply(extraFlags: .unterminated, time: time, observer: observer)
    }

    // MARK: Client

    mutating func receiveClient(_ input: UnsafeRawBufferPointer, time: Timestamp, observer: some SMTPDialogueObserver) {
        var bytes = input
        if !clientSeenBytes {
            clientSeenBytes = true
            if !tlsIsDecrypted, Self.looksLikeTLSRecord(bytes) {
                startTLS(.implicit, time: time, observer: observer)
            }
        }
        while !bytes.isEmpty {
            switch clientMode {
            case .encrypted:
                summary.encryptedClient += bytes.count
                observer.encrypted(side: .client, bytes: bytes.count, time: time)
                return
            case .bdat(let remaining, let last):
                let take = min(remaining, bytes.count)
                observer.messageData(UnsafeRawBufferPointer(rebasing: bytes[0..<take]), message: messageIndex, transfer: .bdat, atLineStart: false, time: time)
                messageSize += take
                bytes = UnsafeRawBufferPointer(rebasing: bytes[take...])
                if take == remaining {
                    finishChunk(last: last, time: time, observer: observer)
                } else {
                    clientMode = .bdat(remaining: remaining - take, last: last)
                }
            case .data, .awaitingDataReply:
                if clientMode == .awaitingDataReply { beginMessage(.data, time: time, observer: observer) }
                consumeMessageData(&bytes, time: time, observer: observer)
            case .awaitingTLSReply where !tlsIsDecrypted && clientLine.isEmpty && Self.looksLikeTLSRecord(bytes):
                // The server's 220 was not captured, but the client is already speaking TLS.
                startTLS(.startTLS, time: time, observer: observer)
            default:
                switch Self.nextLine(&bytes, buffer: &clientLine, resync: &clientResync, side: .client, secret: inAuthExchange, time: time, observer: observer) {
                case nil:
                    return
                case .fragment:
                    continue
                case .inPlace(let raw, let flags):
                    handleClientLine(raw, flags: flags, time: time, observer: observer)
                case .buffered(let flags):
                    var line: [UInt8] = []
                    swap(&line, &clientLine)
                    line.withUnsafeBytes { handleClientLine($0, flags: flags, time: time, observer: observer) }
                    line.removeAll(keepingCapacity: true)
                    if clientLine.isEmpty { swap(&line, &clientLine) }
                }
            }
        }
    }

    mutating func handleClientLine(_ raw: UnsafeRawBufferPointer, flags inputFlags: LineFlags, time: Timestamp, observer: some SMTPDialogueObserver) {
        var flags = inputFlags
        let content = Self.lineContent(raw)
        let verbEnd = SMTPCommand.verbEnd(content)
        let verb = SMTPVerb(bytes: UnsafeRawBufferPointer(rebasing: content[0..<verbEnd]))

        if case .auth(let expectingResponse) = clientMode {
            let isKnown: Bool = if case .unknown = verb { false } else { true }
            if expectingResponse || !isKnown {
                // A response to a 334 challenge: all of it is secret, except a lone `*` (cancel).
                let secret: Range<Int>? = (content.count == 1 && content[0] == 0x2A) || content.isEmpty ? nil : 0..<content.count
                observer.authResponse(raw, secret: secret, flags: flags, time: time)
                clientMode = .auth(expectingResponse: false)
                expectReply(Pending(context: .authResponse))
                return
            }
            clientMode = .command
        }

        if content.count + 2 > SMTPLimits.commandLine { flags.insert(.overLength) }
        commandSeen = true
        var secret: Range<Int>?
        var entry = Pending(context: .command(verb))
        switch verb {
        case .mail:
            let command = SMTPCommand(line: raw)
            if let path = command.mailPath { summary.senders.append(path.address) } else { flags.insert(.malformed) }
        case .rcpt:
            let command = SMTPCommand(line: raw)
            if let path = command.mailPath {
                entry.recipient = summary.recipients.count
                summary.recipients.append(.init(address: path.address, replyCode: nil))
            } else {
                flags.insert(.malformed)
            }
        case .data:
            clientMode = .awaitingDataReply
        case .bdat:
            if let chunk = SMTPCommand(line: raw).binaryDataChunk {
                observer.command(raw, verb: verb, flags: flags, secret: nil, time: time)
                entry.endsMessage = chunk.isLast
                expectReply(entry)
                if !messageOpen || messageTransfer != .bdat { beginMessage(.bdat, time: time, observer: observer) }
                if chunk.size == 0 {
                    finishChunk(last: chunk.isLast, time: time, observer: observer)
                } else {
                    clientMode = .bdat(remaining: chunk.size, last: chunk.isLast)
                }
                return
            }
            flags.insert(.malformed)
        case .auth:
            let command = SMTPCommand(line: raw)
            summary.authMechanism = command.authMechanism
            if let range = command.authInitialResponseRange {
                // The argument starts after the verb and one space.
                let offset = verbEnd + 1
                let initial = (range.lowerBound + offset)..<(range.upperBound + offset)
                // `AUTH PLAIN =` is an empty initial response, not a secret.
                if !(initial.count == 1 && content[initial.lowerBound] == 0x3D) { secret = initial }
            }
            clientMode = .auth(expectingResponse: false)
        case .starttls:
            clientMode = .awaitingTLSReply
        case .quit:
            summary.quitSent = true
            abandonMessage(time: time, observer: observer)
        case .rset:
            abandonMessage(time: time, observer: observer)
        default:
            break
        }
        observer.command(raw, verb: verb, flags: flags, secret: secret, time: time)
        expectReply(entry)
    }

    /// Queues what the next reply answers; beyond ``SMTPLimits/pendingCommandCap`` the oldest is
    /// given up, so a capture of one side only cannot grow the queue without end.
    mutating func expectReply(_ entry: Pending) {
        if pending.count - pendingHead >= SMTPLimits.pendingCommandCap { pendingHead += 1 }
        if pendingHead > 1024, pendingHead * 2 > pending.count {
            pending.removeFirst(pendingHead)
            pendingHead = 0
        }
        pending.append(entry)
    }

    /// Whether the client is inside an AUTH exchange, where any line may carry credentials.
    var inAuthExchange: Bool {
        if case .auth = clientMode { return true }
        return false
    }

    mutating func beginMessage(_ transfer: MessageTransfer, time: Timestamp, observer: some SMTPDialogueObserver) {
        abandonMessage(time: time, observer: observer)
        messageTransfer = transfer
        messageIndex += 1
        messageSize = 0
        messageOpen = true
        if transfer == .data {
            clientMode = .data
            dataAtLineStart = true
        }
    }

    /// Ends an open message as incomplete (a BDAT transaction reset, or a new message begun
    /// before the last chunk), so that every message begun is also ended.
    mutating func abandonMessage(time: Timestamp, observer: some SMTPDialogueObserver) {
        guard messageOpen else { return }
        observer.messageEnd(UnsafeRawBufferPointer(start: nil, count: 0), message: messageIndex, transfer: messageTransfer,
                            size: messageSize, complete: false, time: time)
        messageOpen = false
    }

    mutating func finishChunk(last: Bool, time: Timestamp, observer: some SMTPDialogueObserver) {
        clientMode = .command
        if last, messageOpen {
            observer.messageEnd(UnsafeRawBufferPointer(start: nil, count: 0), message: messageIndex, transfer: .bdat, size: messageSize, complete: true, time: time)
            summary.completedMessages += 1
            summary.messageBytes += messageSize
            messageOpen = false
        }
    }

    /// DATA mode: passes message bytes on in runs and stops after the `.` line.
    mutating func consumeMessageData(_ bytes: inout UnsafeRawBufferPointer, time: Timestamp, observer: some SMTPDialogueObserver) {
        if !dataHold.isEmpty {
            // `.` or `.\r` ended the last segment at a line start: is it the terminator?
            var taken = 0
            while taken < bytes.count, dataHold.count < 3 {
                let byte = bytes[taken]
                dataHold.append(byte)
                taken += 1
                if byte == 0x0A || (dataHold.count == 2 && byte != 0x0D) { break }
            }
            if dataHold == [0x2E, 0x0A] || dataHold == [0x2E, 0x0D, 0x0A] {
                bytes = UnsafeRawBufferPointer(rebasing: bytes[taken...])
                var held: [UInt8] = []
                swap(&held, &dataHold)
                held.withUnsafeBytes { endMessage($0, time: time, observer: observer) }
                held.removeAll(keepingCapacity: true)
                swap(&held, &dataHold)
                return
            }
            if taken == bytes.count, dataHold.last != 0x0A, dataHold.count < 3, dataHold.count == 1 || dataHold.last == 0x0D {
                bytes = UnsafeRawBufferPointer(rebasing: bytes[taken...])
                return  // still undecided
            }
            // An ordinary line that starts with a stuffed dot: give the bytes back and pass the held ones on.
            dataHold.removeLast(taken)
            flushDataHold(time: time, observer: observer)
        }
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        let count = bytes.count
        // Lines that start with a dot are rare: visit only those. Each one is either the end of the
        // message, undecided (at the end of the segment), or carries a transparency dot.
        var stuffedDots = 0
        var candidate = dataAtLineStart && base.load(as: UInt8.self) == 0x2E ? 0 : Self.nextDotLine(base, count, from: 0)
        while let dot = candidate {
            let remaining = count - dot
            let b1: UInt8 = remaining > 1 ? base.load(fromByteOffset: dot + 1, as: UInt8.self) : 0
            let b2: UInt8 = remaining > 2 ? base.load(fromByteOffset: dot + 2, as: UInt8.self) : 0
            let terminatorLength = b1 == 0x0A ? 2 : (b1 == 0x0D && b2 == 0x0A ? 3 : 0)
            let undecided = remaining == 1 || (remaining == 2 && b1 == 0x0D)
            if terminatorLength > 0 || undecided {
                passData(UnsafeRawBufferPointer(start: base, count: dot), stuffedDots: stuffedDots, atLineStart: dataAtLineStart, time: time, observer: observer)
                dataAtLineStart = true
                if undecided {
                    dataHold.append(contentsOf: UnsafeRawBufferPointer(start: base + dot, count: remaining))
                    bytes = UnsafeRawBufferPointer(start: base + count, count: 0)
                } else {
                    endMessage(UnsafeRawBufferPointer(start: base + dot, count: terminatorLength), time: time, observer: observer)
                    bytes = UnsafeRawBufferPointer(start: base + dot + terminatorLength, count: remaining - terminatorLength)
                }
                return
            }
            stuffedDots += 1
            candidate = Self.nextDotLine(base, count, from: dot + 1)
        }
        passData(bytes, stuffedDots: stuffedDots, atLineStart: dataAtLineStart, time: time, observer: observer)
        dataAtLineStart = base.load(fromByteOffset: count - 1, as: UInt8.self) == 0x0A
        bytes = UnsafeRawBufferPointer(start: base + count, count: 0)
    }

    /// The offset of the next line, at or after `from`, that starts with a dot.
    @inline(__always)
    static func nextDotLine(_ base: UnsafeRawPointer, _ count: Int, from: Int) -> Int? {
        guard from < count, let found = smtp_find_newline_dot(base + from, count - from) else { return nil }
        return base.distance(to: found) + 1
    }

    /// Passes DATA bytes on; `stuffedDots` is how many transparency dots they hold (when known).
    mutating func passData(_ raw: UnsafeRawBufferPointer, stuffedDots: Int? = nil, atLineStart: Bool, time: Timestamp, observer: some SMTPDialogueObserver) {
        guard !raw.isEmpty else { return }
        messageSize += raw.count - (stuffedDots ?? Self.stuffedDotCount(raw, atLineStart: atLineStart))
        observer.messageData(raw, message: messageIndex, transfer: .data, atLineStart: atLineStart, time: time)
    }

    mutating func flushDataHold(time: Timestamp, observer: some SMTPDialogueObserver) {
        guard !dataHold.isEmpty else { return }
        var held: [UInt8] = []
        swap(&held, &dataHold)
        held.withUnsafeBytes { passData($0, atLineStart: true, time: time, observer: observer) }
        dataAtLineStart = held.last == 0x0A
        held.removeAll(keepingCapacity: true)
        swap(&held, &dataHold)
    }

    /// The `.` line: the message is complete; the next reply answers it.
    mutating func endMessage(_ terminator: UnsafeRawBufferPointer, time: Timestamp, observer: some SMTPDialogueObserver) {
        observer.messageEnd(terminator, message: messageIndex, transfer: .data, size: messageSize, complete: true, time: time)
        summary.completedMessages += 1
        summary.messageBytes += messageSize
        messageOpen = false
        clientMode = .command
        expectReply(Pending(context: .message))
    }

    /// How many transparency dots `raw` holds.
    static func stuffedDotCount(_ raw: UnsafeRawBufferPointer, atLineStart: Bool) -> Int {
        guard let base = raw.baseAddress, !raw.isEmpty else { return 0 }
        var dots = atLineStart && raw[0] == 0x2E ? 1 : 0
        var position = 0
        while let dot = nextDotLine(base, raw.count, from: position) {
            dots += 1
            position = dot + 1
        }
        return dots
    }

    // MARK: Server

    mutating func receiveServer(_ input: UnsafeRawBufferPointer, time: Timestamp, observer: some SMTPDialogueObserver) {
        var bytes = input
        if !serverSeenBytes {
            serverSeenBytes = true
            if !tlsIsDecrypted, Self.looksLikeTLSRecord(bytes), summary.tls == nil {
                startTLS(.implicit, time: time, observer: observer)
            }
        }
        while !bytes.isEmpty {
            if serverEncrypted {
                summary.encryptedServer += bytes.count
                observer.encrypted(side: .server, bytes: bytes.count, time: time)
                return
            }
            switch Self.nextLine(&bytes, buffer: &serverLine, resync: &serverResync, side: .server, time: time, observer: observer) {
            case nil:
                return
            case .fragment:
                continue
            case .inPlace(let raw, let flags):
                handleServerLine(raw, flags: flags, time: time, observer: observer)
            case .buffered(let flags):
                var line: [UInt8] = []
                swap(&line, &serverLine)
                line.withUnsafeBytes { handleServerLine($0, flags: flags, time: time, observer: observer) }
                line.removeAll(keepingCapacity: true)
                if serverLine.isEmpty { swap(&line, &serverLine) }
            }
        }
    }

    mutating func handleServerLine(_ raw: UnsafeRawBufferPointer, flags inputFlags: LineFlags, time: Timestamp, observer: some SMTPDialogueObserver) {
        var flags = inputFlags
        let content = Self.lineContent(raw)
        if content.count + 2 > SMTPLimits.replyLine { flags.insert(.overLength) }
        guard let code = SMTPReplyLine.code(content) else {
            // Not a reply line: finish any reply in progress, then report this line alone.
            flushReply(extraFlags: [], time: time, observer: observer)
            deliverReply(raw, lineCount: 1, code: nil, flags: flags.union(.notAReply), time: time, observer: observer)
            return
        }
        let isContinuation = content.count > 3 && content[3] == 0x2D
        if content.count > 3, content[3] != 0x2D, content[3] != 0x20 { flags.insert(.missingSeparator) }
        if replyLineCount == 0 {
            if !isContinuation {
                deliverReply(raw, lineCount: 1, code: code, flags: flags, time: time, observer: observer)
                return
            }
            replyCode = code
            replyTime = time
            replyFlags = flags
        } else {
            if code != replyCode { flags.insert(.mixedCodes) }
            replyFlags.formUnion(flags)
        }
        replyBuffer.append(contentsOf: raw)
        replyLineCount += 1
        if !isContinuation {
            deliverBufferedReply(code: code, extraFlags: [], time: time, observer: observer)
        } else if replyBuffer.count > SMTPLimits.unterminatedLineCap {
            // A reply that never ends: report what came so far, flagged, and start afresh.
            deliverBufferedReply(code: code, extraFlags: [.overLength, .unterminated], time: time, observer: observer)
        }
    }

    /// Delivers the reply accumulated in ``replyBuffer`` and resets it, without copying it.
    mutating func deliverBufferedReply(code: Int?, extraFlags: LineFlags, time: Timestamp, observer: some SMTPDialogueObserver) {
        let lines = replyLineCount
        let flags = replyFlags.union(extraFlags)
        let start = replyTime
        var buffered: [UInt8] = []
        swap(&buffered, &replyBuffer)
        replyLineCount = 0
        replyCode = nil
        replyFlags = []
        buffered.withUnsafeBytes { deliverReply($0, lineCount: lines, code: code, flags: flags, time: start, observer: observer) }
        buffered.removeAll(keepingCapacity: true)
        if replyBuffer.isEmpty { swap(&buffered, &replyBuffer) }
    }

    /// Reports a partial line and a multi-line reply that never got its last line.
    mutating func flushReply(extraFlags: LineFlags, time: Timestamp, observer: some SMTPDialogueObserver) {
        if !serverLine.isEmpty {
            var partial: [UInt8] = []
            swap(&partial, &serverLine)
            partial.withUnsafeBytes { handleServerLine($0, flags: .unterminated, time: time, observer: observer) }
        }
        guard replyLineCount > 0 else { return }
        deliverBufferedReply(code: replyCode, extraFlags: extraFlags, time: time, observer: observer)
    }

    mutating func deliverReply(_ raw: UnsafeRawBufferPointer, lineCount: Int, code: Int?, flags inputFlags: LineFlags, time: Timestamp, observer: some SMTPDialogueObserver) {
        var flags = inputFlags
        var context = ReplyContext.none
        var recipient = -1
        var endsMessage = false
        // A line without a code answers nothing: the command waiting keeps its slot.
        if code != nil, pendingHead < pending.count {
            context = pending[pendingHead].context
            recipient = pending[pendingHead].recipient
            endsMessage = pending[pendingHead].endsMessage
            pendingHead += 1
            if pendingHead == pending.count {
                pending.removeAll(keepingCapacity: true)
                pendingHead = 0
            }
        } else if code == 220 || code == 421 || code == 554, !commandSeen, summary.lastReplyCode == nil {
            // A capture that began after the handshake but before the greeting.
            context = .greeting
        } else if code != nil {
            flags.insert(.unsolicited)
        }
        if let code { summary.lastReplyCode = code }
        observer.reply(raw, lineCount: lineCount, code: code, context: context, flags: flags, time: time)
        guard let code else { return }

        switch context {
        case .command(.rcpt) where recipient >= 0:
            summary.recipients[recipient].replyCode = code
        case .command(.data):
            if code == 354 {
                if clientMode == .awaitingDataReply { beginMessage(.data, time: time, observer: observer) }
            } else if clientMode == .awaitingDataReply {
                clientMode = .command
            }
        case .message:
            summary.messageReplyCodes.append(code)
        case .command(.bdat) where endsMessage:
            // The reply to the LAST chunk ends the message's transaction.
            summary.messageReplyCodes.append(code)
        case .none where code == 334 && clientMode == .command:
            // A challenge no command was waiting for (the capture began mid-exchange): the
            // client's next line is a response, and a secret.
            clientMode = .auth(expectingResponse: true)
        case .command(.auth), .authResponse:
            // Only a client waiting in the AUTH exchange changes state: a stray reply must not
            // pull it out of, say, message data.
            guard case .auth = clientMode else { break }
            if code == 334 {
                clientMode = .auth(expectingResponse: true)
            } else {
                summary.authReplyCode = code
                clientMode = .command
            }
        case .command(.starttls):
            if code / 100 == 2 {
                startTLS(.startTLS, time: time, observer: observer)
            } else if clientMode == .awaitingTLSReply {
                clientMode = .command
            }
        default:
            break
        }
    }

    mutating func startTLS(_ mode: TLSMode, time: Timestamp, observer: some SMTPDialogueObserver) {
        guard summary.tls == nil else { return }
        summary.tls = mode
        observer.tlsStarted(mode, time: time)
        if tlsIsDecrypted {
            if clientMode == .awaitingTLSReply { clientMode = .command }
            return
        }
        flushClientLine(time: time, observer: observer)
        clientMode = .encrypted
        serverEncrypted = true
        // Plaintext the server had buffered after its 220 would be an injection (CVE-2011-0411): nothing to parse.
        if !serverLine.isEmpty {
            summary.encryptedServer += serverLine.count
            observer.encrypted(side: .server, bytes: serverLine.count, time: time)
            serverLine.removeAll()
        }
    }

    mutating func flushClientLine(time: Timestamp, observer: some SMTPDialogueObserver) {
        guard !clientLine.isEmpty else { return }
        var partial: [UInt8] = []
        swap(&partial, &clientLine)
        partial.withUnsafeBytes { handleClientLine($0, flags: .unterminated, time: time, observer: observer) }
    }

    // MARK: Lines

    /// Where the next complete line is: in place in the input, or assembled in the side's buffer.
    enum LineSource {
        case inPlace(UnsafeRawBufferPointer, LineFlags)
        case buffered(LineFlags)
        /// The bytes up to the next LF were passed on as a fragment (resynchronising after a gap).
        case fragment
    }

    /// Takes the next complete line from `bytes` (joining it with a partial line kept in `buffer`),
    /// or keeps the partial line and returns `nil`. Honours resynchronisation after a gap.
    static func nextLine(_ bytes: inout UnsafeRawBufferPointer, buffer: inout [UInt8], resync: inout Bool, side: Side, secret: Bool = false, time: Timestamp, observer: some SMTPDialogueObserver) -> LineSource? {
        guard let base = bytes.baseAddress else { return nil }
        let count = bytes.count
        guard let found = memchr(base, 0x0A, count) else {
            buffer.append(contentsOf: bytes)
            bytes = UnsafeRawBufferPointer(start: base + count, count: 0)
            if buffer.count > SMTPLimits.unterminatedLineCap {
                // A peer that never sends LF: report what we have and start afresh.
                buffer.withUnsafeBytes { reportFragment($0, side: side, secret: secret, time: time, observer: observer) }
                buffer.removeAll(keepingCapacity: false)
                resync = true
            }
            return nil
        }
        let lineEnd = base.distance(to: UnsafeRawPointer(found)) + 1
        bytes = UnsafeRawBufferPointer(start: base + lineEnd, count: count - lineEnd)
        if resync, buffer.isEmpty, Self.startsLine(UnsafeRawBufferPointer(start: base, count: lineEnd), side: side) {
            // Gaps mostly fall on segment boundaries, which in SMTP are line starts: when the
            // bytes after the gap plainly begin a command or a reply, read them as one.
            resync = false
        }
        if resync {
            resync = false
            buffer.append(contentsOf: UnsafeRawBufferPointer(start: base, count: lineEnd))
            buffer.withUnsafeBytes { reportFragment($0, side: side, secret: secret, time: time, observer: observer) }
            buffer.removeAll(keepingCapacity: true)
            return .fragment
        }
        if buffer.isEmpty {
            let bareLF = lineEnd < 2 || base.load(fromByteOffset: lineEnd - 2, as: UInt8.self) != 0x0D
            return .inPlace(UnsafeRawBufferPointer(start: base, count: lineEnd), bareLF ? .bareLF : [])
        }
        buffer.append(contentsOf: UnsafeRawBufferPointer(start: base, count: lineEnd))
        let bareLF = buffer.count < 2 || buffer[buffer.count - 2] != 0x0D
        return .buffered(bareLF ? .bareLF : [])
    }

    /// A fragment inside an AUTH exchange may hold credentials: it is reported as an AUTH response,
    /// all secret, so that every output redacts it.
    static func reportFragment(_ raw: UnsafeRawBufferPointer, side: Side, secret: Bool, time: Timestamp, observer: some SMTPDialogueObserver) {
        if secret {
            observer.authResponse(raw, secret: 0..<lineContent(raw).count, flags: .unterminated, time: time)
        } else {
            observer.fragment(raw, side: side, time: time)
        }
    }

    /// Whether a line is plainly a whole command (a known verb) or reply (a code and separator).
    static func startsLine(_ line: UnsafeRawBufferPointer, side: Side) -> Bool {
        let content = lineContent(line)
        if side == .server {
            return SMTPReplyLine.beginsReply(content)
        }
        let verbEnd = SMTPCommand.verbEnd(content)
        if case .unknown = SMTPVerb(bytes: UnsafeRawBufferPointer(rebasing: content[0..<verbEnd])) { return false }
        return true
    }

    @inline(__always)
    static func lineContent(_ raw: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer { SMTPLine.content(raw) }

    /// A TLS handshake record header: content type 22, version 3.x.
    static func looksLikeTLSRecord(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 3 && bytes[0] == 0x16 && bytes[1] == 0x03 && bytes[2] <= 0x04
    }
}
