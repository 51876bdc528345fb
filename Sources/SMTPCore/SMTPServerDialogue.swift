import CSMTPScan

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The SMTP dialogue in the server's role: what a live server reads from its client.
///
/// ``SMTPDialogue`` reads both sides of a finished conversation and must infer, from the replies
/// it sees, where the client's mode changed. A server decides those changes itself, so this type
/// takes them from the server: bytes go in with ``receive(_:)``, events come out one at a time
/// with ``next()``, and the server tells each reply's code with ``replied(_:)``. A `354` to DATA
/// starts message content, a `334` makes the next line an AUTH response, a `220` to STARTTLS
/// throws away whatever plaintext came after the command (RFC 3207 5: it must never be executed,
/// the STARTTLS injection of CVE-2011-0411), a `221` to QUIT ends the dialogue.
///
/// It never calls back (the shape of NIO's single-step decoders), so a server can answer from
/// anywhere without re-entering it. Every event but the last needs its reply before ``next()``
/// gives another: that is how replies steer the mode, and it keeps pipelined commands in order
/// (RFC 2920). Lines, dot-stuffing, BDAT sizes and AUTH secrets follow the same grammar as
/// captures (``SMTPCommand``, ``DotStuffing``, ``SMTPLimits``).
public struct SMTPServerDialogue: Sendable {
    /// Bounds on what one client can make the server hold.
    public struct Limits: Sendable, Hashable {
        /// Longest command or AUTH line (with its ending) accepted; a longer one is
        /// ``Event/lineTooLong(discarded:)``. RFC 5321 4.5.3.1.4 sets 512 octets as the least a
        /// server must accept; longer lines are flagged ``LineFlags/overLength`` but accepted up to this.
        public var commandLine: Int
        /// Largest message content kept, in octets; a larger message is read to its end (so the
        /// dialogue stays in step) and reported with ``Message/tooLarge``, its content cut here.
        public var messageSize: Int

        public init(commandLine: Int = 4096, messageSize: Int = 64 << 20) {
            self.commandLine = commandLine
            self.messageSize = messageSize
        }
    }

    /// A line the client sent (a command or an AUTH response).
    public struct ClientLine: Sendable, Hashable {
        /// The exact bytes, line ending included.
        public var bytes: [UInt8]
        /// The verb (for AUTH responses, ``SMTPVerb/unknown(_:)`` of the line).
        public var verb: SMTPVerb
        /// Bare LF, over the RFC 5321 length, unparsable argument.
        public var flags: LineFlags
        /// Sent before the reply to the previous command (or the greeting) was given.
        public var pipelined: Bool

        /// The line without its ending.
        public var content: [UInt8] { SMTPLine.content(bytes) }
    }

    /// A message's content, after its transfer ended (the `.` line, or the LAST BDAT chunk).
    public struct Message: Sendable, Hashable {
        /// The content as sent with DATA (dot-stuffed, without the `.` line); for BDAT, the chunks
        /// joined. Cut at ``Limits/messageSize``.
        public var wire: [UInt8]
        /// The content (dot-unstuffed for DATA). Cut at ``Limits/messageSize``.
        public var content: [UInt8]
        /// Octets of content sent, even beyond the limit.
        public var size: Int
        public var transfer: MessageTransfer
        /// Bigger than ``Limits/messageSize``.
        public var tooLarge: Bool
        /// Some line of the content ended in a bare LF, or the `.` line did.
        public var bareLF: Bool
        /// Some line was longer than 1000 octets (RFC 5321 4.5.3.1.6).
        public var overLength: Bool
    }

    /// One BDAT chunk (RFC 3030): the command and the bytes it announced.
    public struct Chunk: Sendable, Hashable {
        public var command: ClientLine
        public var size: Int
        public var last: Bool
        /// The message so far, when this chunk is the LAST one.
        public var message: Message?
    }

    /// What the client did; each asks for one reply.
    public enum Event: Sendable, Hashable {
        /// A command line. DATA's content follows only after ``replied(_:)`` with `354`.
        case command(ClientLine)
        /// A line after a `334` challenge (RFC 4954): a credential, or `*` to cancel.
        case authResponse(ClientLine)
        /// A DATA message's content, read to its `.` line.
        case message(Message)
        /// A BDAT chunk, read whole; BDAT is answered after its chunk.
        case chunk(Chunk)
        /// A line longer than ``Limits/commandLine``: its bytes (`discarded` of them) are
        /// dropped up to its end, and it gets a `500` (RFC 5321 4.5.3.1.4).
        case lineTooLong(discarded: Int)
    }

    enum Mode: Sendable, Equatable {
        case command
        /// An event was given; its reply decides what comes next.
        case awaitingReply(Awaited)
        case authResponse
        case data(atLineStart: Bool)
        case chunk(remaining: Int)
        /// A line over the limit: bytes are dropped up to its LF.
        case discardingLine
        /// After `221`: nothing more is read.
        case closed
    }

    enum Awaited: Sendable, Equatable {
        case command(SMTPVerb)
        case authResponse
        case message
        case chunk(last: Bool)
        /// `dropRest`: the line had not ended; its bytes are dropped up to its LF.
        case lineTooLong(dropRest: Bool)
    }

    public var limits: Limits
    var mode = Mode.command
    var buffer: [UInt8] = []
    var start = 0
    /// Stream offsets: of `buffer[start]`, and of the end of what had arrived when the last reply was given.
    var consumed = 0
    var receivedAtLastReply = 0
    var received = 0
    /// The BDAT message (or DATA message) being gathered.
    var message = Message(wire: [], content: [], size: 0, transfer: .data, tooLarge: false, bareLF: false, overLength: false)
    var bdatOpen = false
    var pendingChunk: (command: ClientLine, size: Int, last: Bool)?
    /// Bytes of the current DATA line so far (to flag lines over 1000 octets), and its last byte.
    var dataLineLength = 0
    var lastDataByte: UInt8 = 0

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Whether the dialogue is over (QUIT was answered `221`): later bytes are ignored.
    public var isClosed: Bool { mode == .closed }

    /// Whether the next event waits for the reply to the last one.
    public var awaitingReply: Bool {
        if case .awaitingReply = mode { return true }
        return false
    }

    /// Bytes received and not yet read into an event.
    public var bufferedBytes: Int { buffer.count - start }

    /// Takes bytes from the client.
    public mutating func receive(_ bytes: UnsafeRawBufferPointer) {
        guard mode != .closed, !bytes.isEmpty else { return }
        if start > 0, start >= buffer.count / 2 {
            buffer.removeSubrange(0..<start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
        received += bytes.count
    }

    public mutating func receive(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { receive($0) }
    }

    /// Tells the dialogue the code of the reply to the last event. Returns the number of bytes
    /// thrown away: after a `220` to STARTTLS, the plaintext the client sent after the command
    /// (to be reported, never executed); otherwise 0.
    @discardableResult
    public mutating func replied(_ code: Int) -> Int {
        receivedAtLastReply = received
        guard case .awaitingReply(let awaited) = mode else { return 0 }
        switch awaited {
        case .command(.data) where code == 354:
            message = Message(wire: [], content: [], size: 0, transfer: .data, tooLarge: false, bareLF: false, overLength: false)
            dataLineLength = 0
            mode = .data(atLineStart: true)
        case .command(.auth) where code == 334, .authResponse where code == 334:
            mode = .authResponse
        case .command(.starttls) where code == 220:
            let dropped = buffer.count - start
            consume(dropped)
            mode = .command
            return dropped
        case .command(.quit) where code == 221:
            consume(buffer.count - start)
            mode = .closed
        case .command(.rset), .command(.mail), .command(.helo), .command(.ehlo):
            // A new transaction (or none): chunks gathered so far belong to no message.
            bdatOpen = false
            mode = .command
        case .chunk(let last):
            if last || code / 100 != 2 { bdatOpen = false }
            mode = .command
        case .lineTooLong(dropRest: true):
            mode = .discardingLine
        default:
            mode = .command
        }
        if mode != .closed, code == 421 { consume(buffer.count - start); mode = .closed }
        return 0
    }

    /// The next thing the client did, or `nil` when more bytes are needed (or a reply is awaited).
    public mutating func next() -> Event? {
        while true {
            switch mode {
            case .closed, .awaitingReply:
                return nil
            case .command, .authResponse:
                let auth = mode == .authResponse
                guard let line = takeLine() else {
                    guard buffer.count - start > limits.commandLine else { return nil }
                    // Already too long and no end yet: answer now, drop the rest up to its LF.
                    let held = buffer.count - start
                    consume(held)
                    mode = .awaitingReply(.lineTooLong(dropRest: true))
                    return .lineTooLong(discarded: held)
                }
                if line.bytes.count > limits.commandLine {
                    mode = .awaitingReply(.lineTooLong(dropRest: false))
                    return .lineTooLong(discarded: line.bytes.count)
                }
                if auth {
                    mode = .awaitingReply(.authResponse)
                    return .authResponse(line)
                }
                if line.verb == .bdat, let chunk = SMTPCommand(line: line.bytes).binaryDataChunk {
                    pendingChunk = (line, chunk.size, chunk.isLast)
                    if !bdatOpen {
                        bdatOpen = true
                        message = Message(wire: [], content: [], size: 0, transfer: .bdat, tooLarge: false, bareLF: false, overLength: false)
                    }
                    mode = .chunk(remaining: chunk.size)
                    continue
                }
                var command = line
                if command.verb == .bdat { command.flags.insert(.malformed) }
                mode = .awaitingReply(.command(command.verb))
                return .command(command)
            case .discardingLine:
                guard let newline = findLF() else {
                    consume(buffer.count - start)
                    return nil
                }
                consume(newline - start + 1)
                mode = .command
            case .data(let atLineStart):
                if let event = readData(atLineStart: atLineStart) { return event }
                return nil
            case .chunk(let remaining):
                let take = min(remaining, buffer.count - start)
                if take > 0 {
                    appendContent(buffer[start..<(start + take)], unstuffed: nil)
                    consume(take)
                }
                if remaining - take > 0 {
                    mode = .chunk(remaining: remaining - take)
                    return nil
                }
                guard let chunk = pendingChunk else { mode = .command; continue }
                pendingChunk = nil
                mode = .awaitingReply(.chunk(last: chunk.last))
                return .chunk(Chunk(command: chunk.command, size: chunk.size, last: chunk.last, message: chunk.last ? message : nil))
            }
        }
    }

    // MARK: Reading

    mutating func consume(_ count: Int) {
        start += count
        consumed += count
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 64 << 10)
            start = 0
        }
    }

    func findLF() -> Int? {
        buffer.withUnsafeBytes { raw -> Int? in
            guard let base = raw.baseAddress, start < raw.count,
                  let found = memchr(base + start, 0x0A, raw.count - start) else { return nil }
            return base.distance(to: UnsafeRawPointer(found))
        }
    }

    /// The next complete line, taken out of the buffer.
    mutating func takeLine() -> ClientLine? {
        guard let newline = findLF() else { return nil }
        let bytes = Array(buffer[start...newline])
        let pipelined = consumed < receivedAtLastReply
        consume(bytes.count)
        var flags = LineFlags()
        if bytes.count < 2 || bytes[bytes.count - 2] != 0x0D { flags.insert(.bareLF) }
        if bytes.count > SMTPLimits.commandLine { flags.insert(.overLength) }
        let verb = bytes.withUnsafeBytes { raw -> SMTPVerb in
            let content = SMTPLine.content(raw)
            return SMTPVerb(bytes: UnsafeRawBufferPointer(rebasing: content[0..<SMTPCommand.verbEnd(content)]))
        }
        return ClientLine(bytes: bytes, verb: verb, flags: flags, pipelined: pipelined)
    }

    mutating func appendContent(_ wire: ArraySlice<UInt8>, unstuffed: [UInt8]?) {
        message.size += unstuffed?.count ?? wire.count
        let room = limits.messageSize - message.content.count
        if room <= 0 || message.tooLarge {
            message.tooLarge = message.tooLarge || !(unstuffed ?? Array(wire)).isEmpty
            return
        }
        let content = unstuffed ?? Array(wire)
        if content.count > room {
            message.tooLarge = true
            message.content.append(contentsOf: content[0..<room])
            message.wire.append(contentsOf: wire.prefix(room))
        } else {
            message.content.append(contentsOf: content)
            message.wire.append(contentsOf: wire)
        }
    }

    /// DATA content up to the `.` line; the event once it came.
    mutating func readData(atLineStart: Bool) -> Event? {
        let available = buffer.count - start
        guard available > 0 else { return nil }
        // Where the `.` line is, if it has come: at the start, or after an LF.
        let found: (terminator: Range<Int>, undecidedFrom: Int?) = buffer.withUnsafeBytes { raw in
            let base = raw.baseAddress! + start
            let view = UnsafeRawBufferPointer(start: base, count: available)
            func check(_ dot: Int) -> (Range<Int>?, Bool) {
                let rest = available - dot
                if rest >= 2, view[dot + 1] == 0x0A { return (dot..<(dot + 2), false) }
                if rest >= 3, view[dot + 1] == 0x0D, view[dot + 2] == 0x0A { return (dot..<(dot + 3), false) }
                // `.` or `.\r` at the end: the next bytes decide.
                return (nil, rest == 1 || (rest == 2 && view[dot + 1] == 0x0D))
            }
            var dot: Int? = atLineStart && view[0] == 0x2E ? 0 : DotStuffing.nextDotLine(base, available, from: 0)
            while let position = dot {
                let (terminator, undecided) = check(position)
                if let terminator { return (terminator, nil) }
                if undecided { return (0..<0, position) }
                dot = DotStuffing.nextDotLine(base, available, from: position)
            }
            return (0..<0, nil)
        }
        let end: Int
        if !found.terminator.isEmpty {
            end = found.terminator.lowerBound
        } else if let undecided = found.undecidedFrom {
            end = undecided
        } else {
            end = available
        }
        if end > 0 {
            let wire = buffer[start..<(start + end)]
            var unstuffed: [UInt8] = []
            let lineStart = wire.withUnsafeBytes { DotStuffing.unstuff($0, atLineStart: atLineStart, into: &unstuffed) }
            scanLines(wire)
            appendContent(wire, unstuffed: unstuffed)
            consume(end)
            mode = .data(atLineStart: lineStart)
        }
        guard !found.terminator.isEmpty else { return nil }
        let terminatorLength = found.terminator.count
        if terminatorLength == 2 { message.bareLF = true }
        consume(terminatorLength)
        mode = .awaitingReply(.message)
        return .message(message)
    }

    /// Flags bare LFs and lines over 1000 octets in DATA content.
    mutating func scanLines(_ wire: ArraySlice<UInt8>) {
        wire.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var position = 0
            while position < raw.count, let found = memchr(base + position, 0x0A, raw.count - position) {
                let newline = base.distance(to: UnsafeRawPointer(found))
                let length = dataLineLength + newline - position + 1
                if length > SMTPLimits.textLine { message.overLength = true }
                let before: UInt8? = newline > 0 ? raw[newline - 1] : (dataLineLength > 0 ? lastDataByte : nil)
                if before != 0x0D { message.bareLF = true }
                dataLineLength = 0
                position = newline + 1
            }
            dataLineLength += raw.count - position
            if let last = raw.last { lastDataByte = last }
        }
    }
}
