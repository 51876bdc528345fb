import CSMTPScan
import DequeModule

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
///
/// Bytes missing from a capture (gaps) are never joined over: a line cut by a gap is reported up
/// to the gap, and what follows resumes at the next line. Where a gap leaves the dialogue unsure,
/// it resynchronises on what the other side says: a reply that can only answer a message ends a
/// message whose end fell into a gap; a reply that does not fit the next command answers one the
/// gap swallowed; a reply that fits none of the waiting commands after a server-side gap skips
/// those whose replies were lost.
public struct SMTPDialogue {
    enum ClientMode: Equatable {
        case command
        /// DATA was sent; waiting for 354.
        case awaitingDataReply
        case data
        /// Bytes after a gap inside DATA content (or after DATA): held until the `.` line, or a
        /// reply from the server, tells where the message ended.
        case dataAfterGap
        case bdat(remaining: Int, last: Bool)
        /// AUTH was sent; `expectingResponse` once a 334 challenge came.
        case auth(expectingResponse: Bool)
        case awaitingTLSReply
        case encrypted
    }

    struct Pending {
        var context: ReplyContext
        /// Index into ``SessionSummary/senders`` (MAIL) or ``SessionSummary/recipients`` (RCPT).
        var envelope: Int = -1
        /// For `BDAT ... LAST`: its reply is the verdict on the message.
        var endsMessage = false
        /// A line before any command, held until its reply says whether it was a credential.
        var held = false
    }

    public private(set) var summary = SessionSummary()

    var clientMode = ClientMode.command
    var serverEncrypted = false
    /// STARTTLS was accepted; the first bytes after it tell whether TLS followed.
    var tlsUndecided = false
    /// When STARTTLS was accepted: where the transcript marks the start of TLS.
    var tlsAcceptedAt = Timestamp(nanoseconds: 0)
    /// The first byte or two after STARTTLS, while they could still begin a TLS record.
    var tlsProbe: (side: Side, bytes: [UInt8]) = (.client, [])
    var clientSeenBytes = false
    var serverSeenBytes = false
    /// Any client line was seen (for the mid-session greeting rule).
    var commandSeen = false
    /// Whether the capture began after the session did (no handshake): it may begin inside AUTH.
    let beganMidSession: Bool
    /// A line with a known verb, or the greeting, was seen: the dialogue is not inside an AUTH
    /// exchange begun before the capture.
    var knownCommandSeen = false
    /// After a gap, bytes up to the next LF are a fragment.
    var clientResync = false
    var serverResync = false
    /// The server's side had a gap: replies may be missing, so a reply may skip waiting commands.
    var serverRepliesLost = false
    /// The client's side had a gap outside message data, and no line with a known verb came since:
    /// the gap may have swallowed an AUTH command or challenge, so a line that is not a known
    /// command, or the rest of a line the gap cut, may be a credential. When in doubt, redact.
    var clientInDoubt = false

    var clientLine: [UInt8] = []
    var serverLine: [UInt8] = []
    var replyBuffer: [UInt8] = []
    var replyLineCount = 0
    var replyCode: Int?
    var replyFlags = LineFlags()
    var replyTime = Timestamp(nanoseconds: 0)

    var pending = Deque<Pending>()

    var messageIndex = 0
    var messageSize = 0
    var messageOpen = false
    /// Bytes of the open message are missing: it will end incomplete.
    var messageGapped = false
    /// The client's side had a gap since its last MAIL: a BDAT message beginning now may have
    /// lost chunks to it.
    var clientGapSinceMail = false
    var messageTransfer = MessageTransfer.data
    var dataAtLineStart = true
    /// Holds `.` or `.\r` at the end of a segment in DATA mode until we know whether it ends the message.
    var dataHold: [UInt8] = []
    /// Client bytes after a gap in DATA (see ``ClientMode/dataAfterGap``).
    var heldData: [UInt8] = []
    var heldDataTime = Timestamp(nanoseconds: 0)
    /// A client line before any command, waiting for its reply (see ``Pending/held``).
    var heldLine: (bytes: [UInt8], flags: LineFlags, time: Timestamp)?
    /// Times never go backwards within a session.
    var lastTime = Timestamp(nanoseconds: Int64.min)

    /// How many bytes after a gap in DATA are held before they are taken for message data.
    static let heldDataCap = 64 << 10

    /// Whether the bytes after TLS starts are given in the clear (a proxy or a replay server sees
    /// them decrypted; a capture does not).
    let tlsIsDecrypted: Bool
    /// Read no client byte after a STARTTLS line until its reply: a proxy holds those bytes (and
    /// drops them if TLS begins, RFC 3207 4.2).
    public var stopsAtTLSRequest = false

    /// Set by a reader that can decrypt TLS (a key log was given). When TLS begins, the
    /// encrypted bytes are kept for it (``takeTLSBytes(from:)``) instead of being counted, and
    /// the reader says what became of them: ``tlsDecrypting(version:cipherSuite:observer:)``,
    /// after which it passes the plaintext to ``receive(_:from:time:observer:)``, or
    /// ``tlsUndecryptable(_:reason:bytes:time:observer:)``.
    public var decryptsTLS = false
    /// Encrypted bytes (and then a hole, if any) for the decrypting reader, per side.
    var tlsClientBytes: [UInt8] = []
    var tlsServerBytes: [UInt8] = []
    var tlsClientGap = 0
    var tlsServerGap = 0
    /// Per side: encrypted bytes go to the reader (not yet known to be undecryptable).
    var handsOffClient = true
    var handsOffServer = true
    /// Where TLS began, until the reader says whether it can be read.
    var deferredTLSStart: (mode: TLSMode, time: Timestamp)?

    /// - Parameter expectGreeting: `false` when the capture began after the session started, so
    ///   the first reply is not taken for the greeting.
    /// - Parameter tlsIsDecrypted: `true` when the caller passes the decrypted bytes after TLS
    ///   starts: TLS is then marked and parsing goes on (RFC 3207: the client starts afresh with EHLO).
    public init(expectGreeting: Bool = true, tlsIsDecrypted: Bool = false) {
        self.tlsIsDecrypted = tlsIsDecrypted
        beganMidSession = !expectGreeting
        // A capture that began mid-session may have cut the first reply: like after a gap, a reply
        // that cannot answer the oldest command resynchronises on one it can.
        serverRepliesLost = beganMidSession
        // No buffers are reserved: most lines are read in place, and captures hold many sessions.
        if expectGreeting { pending.append(Pending(context: .greeting)) }
    }

    /// The client sent STARTTLS and no reply to it came yet: what the client sends now must wait
    /// for the reply (a proxy holds it back: RFC 3207 4.2).
    public var awaitsTLSReply: Bool { clientMode == .awaitingTLSReply }

    /// Whether both directions are encrypted (nothing more will be parsed).
    public var isEncrypted: Bool { clientMode == .encrypted && serverEncrypted }

    @inline(__always)
    mutating func clamp(_ time: Timestamp) -> Timestamp {
        if time > lastTime { lastTime = time }
        return lastTime
    }

    // MARK: Input

    /// Feeds the next in-order bytes of one side. Returns how many were read: all of them,
    /// except with ``stopsAtTLSRequest`` after a client's STARTTLS line (the rest is left to the
    /// caller, which must not pass it on before the reply).
    @discardableResult
    public mutating func receive(_ bytes: UnsafeRawBufferPointer, from side: Side, time: Timestamp, observer: some SMTPDialogueObserver) -> Int {
        guard !bytes.isEmpty else { return 0 }
        let time = clamp(time)
        if side == .client {
            return receiveClient(bytes, time: time, observer: observer)
        }
        receiveServer(bytes, time: time, observer: observer)
        return bytes.count
    }

    /// Reports that `count` bytes of one side are missing; parsing resumes at the next line.
    public mutating func receiveGap(_ count: Int, from side: Side, time: Timestamp, observer: some SMTPDialogueObserver) {
        guard count > 0 else { return }
        let time = clamp(time)
        summary.gapBytes += count
        if tlsUndecided {
            // What followed STARTTLS is lost: nothing tells whether it was TLS.
            decideTLS(encrypted: true, time: time, observer: observer)
            releaseTLSProbe(time: time, observer: observer)
        }
        if side == .client {
            if clientMode == .encrypted {
                if decryptsTLS, handsOffClient { tlsClientGap += count; return }
                summary.encryptedClient += count
                observer.encrypted(side: .client, bytes: count, time: time)
                return
            }
            releaseHeldLine(asSecret: true, time: time, observer: observer)
            // A hole that begins where a line begins holds the start of at least one command.
            let atLineStart = clientLine.isEmpty
            if clientMode == .command || clientMode == .awaitingTLSReply || inAuthExchange { clientInDoubt = true }
            if clientMode == .dataAfterGap {
                // A second hole: what was held between the two cannot be joined to what follows.
                releaseHeldData(time: time, observer: observer)
            }
            flushClientLine(time: time, observer: observer)
            releaseHeldLine(asSecret: true, time: time, observer: observer)
            if clientMode == .data { dropDataHold(time: time, observer: observer) }
            observer.gap(side: .client, bytes: count, time: time)
            switch clientMode {
            case .bdat(let remaining, let last):
                messageGapped = true
                if count < remaining {
                    clientMode = .bdat(remaining: remaining - count, last: last)
                    messageSize += count
                } else {
                    messageSize += remaining
                    finishChunk(last: last, time: time, observer: observer)
                    if count > remaining {
                        // The hole goes on past the chunk: it swallowed what came next.
                        clientGapSinceMail = true
                        clientResync = true
                        expectLostCommands(count - remaining, atLineStart: true)
                    }
                }
            case .data:
                messageGapped = true
                clientMode = .dataAfterGap
                heldDataTime = time
            case .dataAfterGap:
                heldDataTime = time
            case .awaitingDataReply:
                // The server's answer to DATA decides what the bytes after the hole are.
                clientMode = .dataAfterGap
                heldDataTime = time
            default:
                clientGapSinceMail = true
                clientResync = true
                expectLostCommands(count, atLineStart: atLineStart)
            }
        } else {
            if serverEncrypted {
                if decryptsTLS, handsOffServer { tlsServerGap += count; return }
                summary.encryptedServer += count
                observer.encrypted(side: .server, bytes: count, time: time)
                return
            }
            flushReply(extraFlags: .unterminated, time: time, observer: observer)
            observer.gap(side: .server, bytes: count, time: time)
            serverResync = true
            serverRepliesLost = true
        }
    }

    /// Ends the session: whatever is buffered is reported, flagged `unterminated`.
    public mutating func finish(time: Timestamp, observer: some SMTPDialogueObserver) {
        let time = clamp(time)
        settleTLS(time: time, observer: observer)
        releaseHeldLine(asSecret: true, time: time, observer: observer)
        if clientMode == .dataAfterGap { releaseHeldData(time: time, observer: observer) }
        if messageOpen {
            dropDataHold(time: time, observer: observer)
            observer.messageEnd(UnsafeRawBufferPointer(start: nil, count: 0), message: messageIndex,
                                transfer: messageTransfer, size: messageSize, complete: false, time: time)
            messageOpen = false
            if clientMode != .encrypted { clientMode = .command }
        }
        flushClientLine(time: time, observer: observer)
        // The partial line may itself have been held: no reply will come for it now.
        releaseHeldLine(asSecret: true, time: time, observer: observer)
        flushReply(extraFlags: .unterminated, time: time, observer: observer)
    }

    // MARK: TLS

    /// At the end of a session: STARTTLS accepted and the bytes after it too few to tell (or
    /// none) are taken as TLS if any came.
    public mutating func settleTLS(time: Timestamp, observer: some SMTPDialogueObserver) {
        guard tlsUndecided else { return }
        let time = clamp(time)
        decideTLS(encrypted: !tlsProbe.bytes.isEmpty, time: time, observer: observer)
        releaseTLSProbe(time: time, observer: observer)
    }

    mutating func startTLS(_ mode: TLSMode, time: Timestamp, observer: some SMTPDialogueObserver) {
        guard summary.tls == nil else { return }
        summary.tls = mode
        if tlsIsDecrypted {
            summary.tlsState = .decrypted(version: nil, cipherSuite: nil)
            observer.tlsStarted(TLSStart(mode: mode, state: .decrypted(version: nil, cipherSuite: nil)), time: time)
            if clientMode == .awaitingTLSReply { clientMode = .command }
            return
        }
        if mode == .implicit {
            decideTLS(encrypted: true, time: time, observer: observer)
        } else {
            // The first bytes either side sends next tell whether TLS really began.
            flushClientLine(time: time, observer: observer)
            tlsUndecided = true
            tlsAcceptedAt = time
        }
    }

    /// Looks at the first bytes after STARTTLS was accepted: a TLS record header (three bytes)
    /// means TLS began, anything else that it did not. Fewer than three bytes that could still
    /// begin a record are kept until more come; returns `false` then (all of `bytes` was kept).
    mutating func probeTLS(_ bytes: inout UnsafeRawBufferPointer, from side: Side, time: Timestamp, observer: some SMTPDialogueObserver) -> Bool {
        if tlsProbe.bytes.isEmpty, bytes.count >= 3 {
            decideTLS(encrypted: Self.looksLikeTLSRecord(bytes), time: time, observer: observer)
            return true
        }
        var head = tlsProbe.bytes
        head.append(contentsOf: bytes.prefix(3 - head.count))
        let mayBeRecord = head.first == 0x16 && (head.count < 2 || head[1] == 0x03)
        if mayBeRecord, head.count < 3, tlsProbe.bytes.isEmpty || tlsProbe.side == side {
            tlsProbe.side = side
            tlsProbe.bytes.append(contentsOf: bytes)
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return false
        }
        decideTLS(encrypted: mayBeRecord && head.count >= 3 && head[2] <= 0x04, time: time, observer: observer)
        releaseTLSProbe(time: time, observer: observer)
        return true
    }

    /// The bytes kept while deciding go on as their side's first bytes after STARTTLS.
    mutating func releaseTLSProbe(time: Timestamp, observer: some SMTPDialogueObserver) {
        guard !tlsProbe.bytes.isEmpty else { return }
        let probe = tlsProbe
        tlsProbe = (.client, [])
        probe.bytes.withUnsafeBytes {
            if probe.side == .client {
                receiveClient($0, time: time, observer: observer)
            } else {
                receiveServer($0, time: time, observer: observer)
            }
        }
    }

    mutating func decideTLS(encrypted: Bool, time: Timestamp, observer: some SMTPDialogueObserver) {
        let wasUndecided = tlsUndecided
        tlsUndecided = false
        let mode = summary.tls ?? .startTLS
        // Nothing came between the acceptance and these bytes: TLS is marked where it began.
        let startTime = wasUndecided ? tlsAcceptedAt : time
        guard encrypted else {
            summary.tlsState = .plaintext
            observer.tlsStarted(TLSStart(mode: mode, state: .plaintext), time: startTime)
            if clientMode == .awaitingTLSReply { clientMode = .command }
            return
        }
        // A partial client line (and a line held for its reply) belong before TLS: report them first.
        flushClientLine(time: time, observer: observer)
        releaseHeldLine(asSecret: true, time: time, observer: observer)
        summary.tlsState = .encrypted
        if decryptsTLS {
            deferredTLSStart = (mode, startTime)
        } else {
            observer.tlsStarted(TLSStart(mode: mode, state: .encrypted), time: startTime)
        }
        clientMode = .encrypted
        serverEncrypted = true
        // Plaintext the server had buffered after its 220 would be an injection (CVE-2011-0411): nothing to parse.
        if !serverLine.isEmpty {
            let leftover = serverLine
            serverLine.removeAll()
            leftover.withUnsafeBytes { encryptedBytes($0, from: .server, time: time, observer: observer) }
        }
    }

    /// Bytes after TLS began that are not (or not yet) readable: kept for a decrypting reader,
    /// counted otherwise.
    @inline(__always)
    mutating func encryptedBytes(_ bytes: UnsafeRawBufferPointer, from side: Side, time: Timestamp, observer: some SMTPDialogueObserver) {
        if side == .client {
            if decryptsTLS, handsOffClient { tlsClientBytes.append(contentsOf: bytes); return }
            summary.encryptedClient += bytes.count
        } else {
            if decryptsTLS, handsOffServer { tlsServerBytes.append(contentsOf: bytes); return }
            summary.encryptedServer += bytes.count
        }
        observer.encrypted(side: side, bytes: bytes.count, time: time)
    }

    /// The encrypted bytes of one side kept since the last call, and the size of a hole after
    /// them (0 when none): what a decrypting reader passes to its decryptor.
    public mutating func takeTLSBytes(from side: Side) -> (bytes: [UInt8], gap: Int) {
        var bytes: [UInt8] = []
        let gap: Int
        if side == .client {
            swap(&bytes, &tlsClientBytes)
            gap = tlsClientGap
            tlsClientGap = 0
        } else {
            swap(&bytes, &tlsServerBytes)
            gap = tlsServerGap
            tlsServerGap = 0
        }
        return (bytes, gap)
    }

    /// Whether TLS began and the reader must now read both sides' bytes itself.
    public var tlsHandedOff: Bool { decryptsTLS && summary.tlsState != nil && summary.tlsState != .plaintext }

    /// The reader can decrypt the session: TLS is marked as decrypted where it began, and the
    /// dialogue goes on with the plaintext the reader passes (RFC 3207: the client starts afresh).
    public mutating func tlsDecrypting(version: String, cipherSuite: String, observer: some SMTPDialogueObserver) {
        let state = TLSState.decrypted(version: version, cipherSuite: cipherSuite)
        summary.tlsState = state
        if let start = deferredTLSStart {
            deferredTLSStart = nil
            observer.tlsStarted(TLSStart(mode: start.mode, state: state), time: start.time)
        }
        if clientMode == .encrypted { clientMode = .command }
        serverEncrypted = false
    }

    /// The reader cannot decrypt one side (both when `side` is `nil`) from here on: says so, counts
    /// the `bytes` it was given and not decrypted, and counts that side's bytes from now on.
    public mutating func tlsUndecryptable(_ side: Side?, reason: String, bytes: (client: Int, server: Int), time: Timestamp, observer: some SMTPDialogueObserver) {
        let time = clamp(time)
        if let start = deferredTLSStart {
            deferredTLSStart = nil
            observer.tlsStarted(TLSStart(mode: start.mode, state: .encrypted), time: start.time)
        }
        observer.tlsUndecryptable(side: side, reason: reason, time: time)
        if side != .server {
            handsOffClient = false
            flushClientLine(time: time, observer: observer)
            if messageOpen { dropDataHold(time: time, observer: observer) }
            clientMode = .encrypted
            if bytes.client > 0 {
                summary.encryptedClient += bytes.client
                observer.encrypted(side: .client, bytes: bytes.client, time: time)
            }
        }
        if side != .client {
            handsOffServer = false
            flushReply(extraFlags: .unterminated, time: time, observer: observer)
            serverEncrypted = true
            if bytes.server > 0 {
                summary.encryptedServer += bytes.server
                observer.encrypted(side: .server, bytes: bytes.server, time: time)
            }
        }
    }

    // MARK: Client

    @discardableResult
    mutating func receiveClient(_ input: UnsafeRawBufferPointer, time: Timestamp, observer: some SMTPDialogueObserver) -> Int {
        var bytes = input
        // More bytes before the held line's reply: the reply that would tell is lost (or cut, as
        // at the start of a capture), and the line may have been `AUTH PLAIN <secret>` cut short.
        // When in doubt, redact.
        if heldLine != nil { releaseHeldLine(asSecret: true, time: time, observer: observer) }
        if !clientSeenBytes {
            clientSeenBytes = true
            if !tlsIsDecrypted, Self.looksLikeTLSRecord(bytes) {
                startTLS(.implicit, time: time, observer: observer)
            }
        }
        while !bytes.isEmpty {
            if tlsUndecided, !probeTLS(&bytes, from: .client, time: time, observer: observer) { return input.count }
            switch clientMode {
            case .encrypted:
                encryptedBytes(bytes, from: .client, time: time, observer: observer)
                return input.count
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
            case .dataAfterGap:
                heldData.append(contentsOf: bytes)
                bytes = UnsafeRawBufferPointer(start: nil, count: 0)
                resolveHeldData(time: time, observer: observer)
            case .data, .awaitingDataReply:
                if clientMode == .awaitingDataReply { beginMessage(.data, time: time, observer: observer) }
                consumeMessageData(&bytes, time: time, observer: observer)
            case .awaitingTLSReply where !tlsIsDecrypted && clientLine.isEmpty && Self.looksLikeTLSRecord(bytes):
                // The server's 220 was not captured, but the client is already speaking TLS.
                startTLS(.startTLS, time: time, observer: observer)
                decideTLS(encrypted: true, time: time, observer: observer)
            default:
                switch Self.nextLine(&bytes, buffer: &clientLine, resync: &clientResync, side: .client, secret: inAuthExchange || clientInDoubt, time: time, observer: observer) {
                case nil:
                    return input.count
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
                if stopsAtTLSRequest, clientMode == .awaitingTLSReply {
                    return input.count - bytes.count
                }
            }
        }
        return input.count
    }

    mutating func handleClientLine(_ raw: UnsafeRawBufferPointer, flags inputFlags: LineFlags, time: Timestamp, observer: some SMTPDialogueObserver) {
        // A second line before any reply: nothing tells what the held one was (see receiveClient).
        if heldLine != nil { releaseHeldLine(asSecret: true, time: time, observer: observer) }
        var flags = inputFlags
        let content = Self.lineContent(raw)
        let verbEnd = SMTPCommand.verbEnd(content)
        let verb = SMTPVerb(bytes: UnsafeRawBufferPointer(rebasing: content[0..<verbEnd]))
        let isKnown: Bool = if case .unknown = verb { false } else { true }

        if case .auth(let expectingResponse) = clientMode {
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

        // The client would not go on before a reply ended: one still incomplete ended there.
        if isKnown, !flags.contains(.unterminated), !serverLine.isEmpty || replyLineCount > 0 {
            flushReply(extraFlags: .unterminated, time: time, observer: observer)
        }

        if content.count + 2 > SMTPLimits.commandLine { flags.insert(.overLength) }
        if clientInDoubt {
            if !isKnown {
                // After a gap, before any known command: this line may be a credential.
                let secret: Range<Int>? = content.isEmpty ? nil : 0..<content.count
                observer.authResponse(raw, secret: secret, flags: flags, time: time)
                expectReply(Pending(context: .authResponse))
                commandSeen = true
                return
            }
            if !flags.contains(.unterminated) { clientInDoubt = false }
        }
        if beganMidSession, !knownCommandSeen, !isKnown, clientMode == .command {
            // A capture that began inside an AUTH exchange: the password line comes first. A line
            // of base64 alone is taken for a credential at once; any other waits for its reply.
            if Self.isBase64Only(content) {
                observer.authResponse(raw, secret: 0..<content.count, flags: flags, time: time)
                expectReply(Pending(context: .authResponse))
            } else {
                heldLine = (Array(raw), flags, time)
                expectReply(Pending(context: .command(verb), held: true))
            }
            commandSeen = true
            return
        }
        commandSeen = true
        if isKnown { knownCommandSeen = true }
        var secret: Range<Int>?
        var entry = Pending(context: .command(verb))
        switch verb {
        case .mail:
            clientGapSinceMail = false
            if let path = MailPath.address(ofLine: content, verb: verb) {
                entry.envelope = summary.senders.count
                summary.senders.append(EnvelopeAddress(address: path.address, bracketed: path.bracketed))
            } else {
                flags.insert(.malformed)
            }
        case .rcpt:
            if let path = MailPath.address(ofLine: content, verb: verb) {
                entry.envelope = summary.recipients.count
                summary.recipients.append(EnvelopeAddress(address: path.address, bracketed: path.bracketed))
            } else {
                flags.insert(.malformed)
            }
        case .data:
            clientMode = .awaitingDataReply
        case .bdat:
            // A BDAT line cut short (by a gap or the end) cannot be trusted with its size.
            if !flags.contains(.unterminated), let chunk = SMTPCommand(line: raw).binaryDataChunk {
                observer.command(raw, verb: verb, flags: flags, secret: nil, time: time)
                entry.endsMessage = chunk.isLast
                expectReply(entry)
                if !messageOpen || messageTransfer != .bdat {
                    // After a hole since MAIL, earlier chunks of this message may be in the hole.
                    beginMessage(.bdat, bytesMissingBefore: clientGapSinceMail, time: time, observer: observer)
                }
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
            if let range = command.authSecretRange {
                // The argument starts after the verb and one separator.
                let offset = min(verbEnd + 1, content.count)
                let initial = (range.lowerBound + offset)..<min(range.upperBound + offset, content.count)
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

    /// Whether a line is nothing but base64 (`A`-`Z`, `a`-`z`, `0`-`9`, `+`, `/`, `=`).
    static func isBase64Only(_ content: UnsafeRawBufferPointer) -> Bool {
        guard !content.isEmpty else { return false }
        for byte in content {
            switch byte {
            case 0x41...0x5A, 0x61...0x7A, 0x30...0x39, 0x2B, 0x2F, 0x3D: continue
            default: return false
            }
        }
        return true
    }

    /// Reports the line held before any command: as a credential when its reply says it was one
    /// (or when in doubt), else as the command it looked like.
    mutating func releaseHeldLine(asSecret: Bool, time: Timestamp, observer: some SMTPDialogueObserver) {
        guard let held = heldLine else { return }
        heldLine = nil
        if let index = pending.lastIndex(where: \.held) {
            pending[index].held = false
            if asSecret { pending[index].context = .authResponse }
        }
        held.bytes.withUnsafeBytes { raw in
            let content = Self.lineContent(raw)
            if asSecret {
                observer.authResponse(raw, secret: 0..<content.count, flags: held.flags, time: held.time)
            } else {
                let verb = SMTPVerb(bytes: UnsafeRawBufferPointer(rebasing: content[0..<SMTPCommand.verbEnd(content)]))
                observer.command(raw, verb: verb, flags: held.flags, secret: nil, time: held.time)
            }
        }
    }

    /// Queues what the next reply answers; beyond ``SMTPLimits/pendingCommandCap`` the oldest is
    /// given up, so a capture of one side only cannot grow the queue without end.
    mutating func expectReply(_ entry: Pending) {
        if pending.count >= SMTPLimits.pendingCommandCap { pending.removeFirst() }
        pending.append(entry)
    }

    /// A client gap of `count` bytes may have swallowed commands, or their starts: their replies
    /// will come. One that begins at a line start holds one; one that begins inside a line holds
    /// one only if it is longer than the shortest command line (five bytes: `QUIT` and a bare LF).
    mutating func expectLostCommands(_ count: Int, atLineStart: Bool) {
        guard atLineStart || count >= 5, pending.last?.context != .lostCommand else { return }
        expectReply(Pending(context: .lostCommand))
    }

    /// Whether the client is inside an AUTH exchange, where any line may carry credentials.
    var inAuthExchange: Bool {
        if case .auth = clientMode { return true }
        return false
    }

    /// - Parameter bytesMissingBefore: the capture lost bytes of this message before its first
    ///   (DATA's 354 or earlier BDAT chunks fell into a gap).
    mutating func beginMessage(_ transfer: MessageTransfer, bytesMissingBefore: Bool = false, time: Timestamp, observer: some SMTPDialogueObserver) {
        abandonMessage(time: time, observer: observer)
        messageTransfer = transfer
        messageIndex += 1
        messageSize = 0
        messageOpen = true
        messageGapped = bytesMissingBefore
        observer.messageBegan(message: messageIndex, transfer: transfer, bytesMissingBefore: bytesMissingBefore, time: time)
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
            let complete = !messageGapped
            observer.messageEnd(UnsafeRawBufferPointer(start: nil, count: 0), message: messageIndex, transfer: .bdat, size: messageSize, complete: complete, time: time)
            if complete {
                summary.completedMessages += 1
                summary.messageBytes += messageSize
            }
            messageOpen = false
        }
    }

    // MARK: Message data

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
        DotStuffing.nextDotLine(base, count, from: from)
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

    /// `.` or `.\r` held at a line start when a gap, a reply or the end of the stream comes: most
    /// likely the start of the `.` line, perhaps a line of data. Which is unknown, so they are not
    /// message data (an `.eml` holds only bytes known to be in the message): they are a fragment.
    mutating func dropDataHold(time: Timestamp, observer: some SMTPDialogueObserver) {
        guard !dataHold.isEmpty else { return }
        dataHold.withUnsafeBytes { observer.fragment($0, side: .client, secret: false, time: time) }
        dataHold.removeAll(keepingCapacity: true)
        dataAtLineStart = true
    }

    /// The `.` line: the message is over; the next reply answers it.
    mutating func endMessage(_ terminator: UnsafeRawBufferPointer, time: Timestamp, observer: some SMTPDialogueObserver) {
        let complete = !messageGapped
        observer.messageEnd(terminator, message: messageIndex, transfer: .data, size: messageSize, complete: complete, time: time)
        if complete {
            summary.completedMessages += 1
            summary.messageBytes += messageSize
        }
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

    // MARK: Bytes after a gap in DATA

    /// Looks for the message's `.` line in the bytes held after a gap; failing that, once too many
    /// are held, they must be message data.
    mutating func resolveHeldData(time: Timestamp, observer: some SMTPDialogueObserver) {
        guard let terminator = Self.terminatorLine(in: heldData) else {
            if heldData.count > Self.heldDataCap {
                releaseHeldData(time: time, observer: observer)
            }
            return
        }
        var held: [UInt8] = []
        swap(&held, &heldData)
        if !messageOpen {
            // DATA's 354 was not seen (it fell into the hole): the `.` line says there was a message.
            beginMessage(.data, bytesMissingBefore: true, time: time, observer: observer)
        }
        held.withUnsafeBytes { raw in
            releaseAsMessageData(UnsafeRawBufferPointer(rebasing: raw[0..<terminator.lowerBound]), time: heldDataTime, observer: observer)
            endMessage(UnsafeRawBufferPointer(rebasing: raw[terminator]), time: time, observer: observer)
            // What follows the `.` line is commands again.
            if terminator.upperBound < raw.count {
                receiveClient(UnsafeRawBufferPointer(rebasing: raw[terminator.upperBound...]), time: time, observer: observer)
            }
        }
    }

    /// Takes the held bytes for message data, and reads on in DATA mode.
    mutating func releaseHeldData(time: Timestamp, observer: some SMTPDialogueObserver) {
        var held: [UInt8] = []
        swap(&held, &heldData)
        if !messageOpen {
            beginMessage(.data, bytesMissingBefore: true, time: time, observer: observer)
        }
        clientMode = .data
        held.withUnsafeBytes { releaseAsMessageData($0, time: heldDataTime, observer: observer) }
    }

    /// Message bytes that begin right after a hole: the piece up to the first LF is the tail of a
    /// line cut by the hole, a fragment; whole lines follow. Leaves the client in DATA mode.
    mutating func releaseAsMessageData(_ raw: UnsafeRawBufferPointer, time: Timestamp, observer: some SMTPDialogueObserver) {
        clientMode = .data
        guard !raw.isEmpty else { return }
        guard let newline = raw.firstIndex(of: 0x0A) else {
            observer.fragment(raw, side: .client, secret: false, time: time)
            dataAtLineStart = false
            return
        }
        observer.fragment(UnsafeRawBufferPointer(rebasing: raw[0...newline]), side: .client, secret: false, time: time)
        dataAtLineStart = true
        var rest = UnsafeRawBufferPointer(rebasing: raw[(newline + 1)...])
        if !rest.isEmpty { consumeMessageData(&rest, time: time, observer: observer) }
    }

    /// The first `.` line in bytes that began after a hole: at their very start, or after an LF.
    static func terminatorLine(in bytes: [UInt8]) -> Range<Int>? {
        bytes.withUnsafeBytes { DotStuffing.terminatorLine(in: $0) }
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
            if tlsUndecided, !probeTLS(&bytes, from: .server, time: time, observer: observer) { return }
            if serverEncrypted {
                encryptedBytes(bytes, from: .server, time: time, observer: observer)
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

    /// Whether a reply with `code` can answer what `context` waits for. A reply that cannot is
    /// evidence that the pairing slipped (a gap swallowed a command or a reply).
    static func fits(_ code: Int, _ context: ReplyContext) -> Bool {
        let kind = code / 100
        switch context {
        case .greeting: return code == 220 || code == 421 || code == 554
        case .command(.data): return code == 354 || kind == 4 || kind == 5
        case .command(.starttls): return code == 220 || kind == 4 || kind == 5
        case .command(.auth), .authResponse: return kind != 3 || code == 334
        case .command(.quit): return code == 221 || kind == 4 || kind == 5
        case .command(.unknown(_)), .lostCommand, .none: return true
        case .command, .message: return kind != 3 && code != 220 && code != 221
        }
    }

    /// The waiting command a reply with `code` answers (nil when none waits).
    mutating func takePending(code: Int) -> Pending? {
        if serverRepliesLost, let first = pending.first, !Self.fits(code, first.context),
           let fitting = pending.firstIndex(where: { $0.context != .lostCommand && Self.fits(code, $0.context) && !Self.fits(code, .command(.noop)) }) {
            // Replies were lost in a gap: those waiting before the one this reply can only answer
            // get none.
            pending.removeFirst(fitting)
        }
        if let head = pending.first, head.context == .greeting, !Self.fits(code, .greeting), pending.count > 1,
           Self.fits(code, pending[1].context) {
            // No greeting came (or the capture missed it): the reply answers the first command.
            pending.removeFirst()
        }
        while let head = pending.first, head.context == .lostCommand {
            // The next known command takes a reply that fits it; one that does not answers a
            // command the gap swallowed.
            if let next = pending.first(where: { $0.context != .lostCommand }), Self.fits(code, next.context) {
                pending.removeFirst()
                continue
            }
            return Pending(context: .lostCommand)
        }
        let entry = pending.popFirst()
        if pending.isEmpty { serverRepliesLost = false }
        return entry
    }

    mutating func deliverReply(_ raw: UnsafeRawBufferPointer, lineCount: Int, code: Int?, flags inputFlags: LineFlags, time: Timestamp, observer: some SMTPDialogueObserver) {
        var flags = inputFlags
        var context = ReplyContext.none
        var envelope = -1
        var endsMessage = false
        var heldAfterGap: [UInt8]?
        // A line without a code answers nothing: the command waiting keeps its slot.
        if code != nil, pending.isEmpty, messageOpen, messageGapped, clientMode == .data || clientMode == .dataAfterGap {
            // A message whose end fell into a gap: only the message can be answered now. It ends
            // here, incomplete, and what the client sent after the hole is commands again.
            if clientMode == .dataAfterGap {
                heldAfterGap = heldData
                heldData = []
            }
            dropDataHold(time: time, observer: observer)
            observer.messageEnd(UnsafeRawBufferPointer(start: nil, count: 0), message: messageIndex, transfer: .data,
                                size: messageSize, complete: false, time: time)
            messageOpen = false
            clientMode = .command
            context = .message
        } else if let code, let entry = takePending(code: code) {
            context = entry.context
            envelope = entry.envelope
            endsMessage = entry.endsMessage
            if entry.held {
                // The reply tells what the line held before any command was.
                let secret = code == 334 || code == 235 || code == 535
                releaseHeldLine(asSecret: secret, time: time, observer: observer)
                context = secret ? .authResponse : entry.context
            }
        } else if code == 220 || code == 421 || code == 554, !commandSeen, summary.lastReplyCode == nil {
            // A capture that began after the handshake but before the greeting.
            context = .greeting
        } else if code != nil {
            flags.insert(.unsolicited)
        }
        if context == .greeting { knownCommandSeen = true }
        if let code { summary.lastReplyCode = code }
        observer.reply(raw, lineCount: lineCount, code: code, context: context, flags: flags, time: time)
        guard let code else { return }

        switch context {
        case .command(.mail) where envelope >= 0:
            summary.senders[envelope].replyCode = code
        case .command(.rcpt) where envelope >= 0:
            summary.recipients[envelope].replyCode = code
        case .command(.data):
            if code == 354 {
                if clientMode == .awaitingDataReply {
                    beginMessage(.data, time: time, observer: observer)
                } else if clientMode == .dataAfterGap, !messageOpen {
                    // DATA was accepted: the bytes held after the hole are message data.
                    beginMessage(.data, bytesMissingBefore: true, time: time, observer: observer)
                    clientMode = .dataAfterGap
                    resolveHeldData(time: time, observer: observer)
                }
            } else if clientMode == .awaitingDataReply {
                clientMode = .command
            } else if clientMode == .dataAfterGap, !messageOpen {
                // DATA was refused: the bytes after the hole are commands.
                heldAfterGap = heldData
                heldData = []
                clientMode = .command
            }
        case .message:
            summary.messageReplyCodes.append(code)
        case .command(.bdat) where endsMessage:
            // The reply to the LAST chunk ends the message's transaction.
            summary.messageReplyCodes.append(code)
        case .none where code == 334 && clientMode == .command, .lostCommand where code == 334 && clientMode == .command:
            // A challenge no known command was waiting for (the capture began mid-exchange, or
            // the AUTH line fell into a gap): the client's next line is a response, and a secret.
            clientMode = .auth(expectingResponse: true)
        case .none where code == 354 && clientMode == .command && clientLine.isEmpty && beganMidSession,
             .lostCommand where code == 354 && clientMode == .command && clientLine.isEmpty:
            // DATA was accepted although the capture does not hold it (it came before the capture
            // began, or fell into a gap): message data follows.
            beginMessage(.data, bytesMissingBefore: context == .lostCommand, time: time, observer: observer)
            messageGapped = true
        case .command(.auth), .authResponse:
            if code == 334 {
                // Only a client waiting in the AUTH exchange changes state: a stray reply must not
                // pull it out of, say, message data.
                if case .auth = clientMode { clientMode = .auth(expectingResponse: true) }
            } else {
                // Also when AUTH was pipelined and the client has moved on.
                summary.authReplyCode = code
                if case .auth = clientMode { clientMode = .command }
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
        if let held = heldAfterGap, !held.isEmpty {
            // Sent before this reply; read now that the reply said what they are.
            clientResync = true
            _ = held.withUnsafeBytes { receiveClient($0, time: time, observer: observer) }
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
                // A peer that never sends LF: what came so far is a line, too long and unended;
                // the rest of it, when it ends, is a fragment.
                if resync {
                    buffer.withUnsafeBytes { reportFragment($0, side: side, secret: secret, time: time, observer: observer) }
                    buffer.removeAll(keepingCapacity: false)
                    return .fragment
                }
                resync = true
                return .buffered([.overLength, .unterminated])
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

    /// A fragment inside an AUTH exchange (or after a gap that may have swallowed one) may hold
    /// credentials: it is reported as secret, so that every output redacts it.
    static func reportFragment(_ raw: UnsafeRawBufferPointer, side: Side, secret: Bool, time: Timestamp, observer: some SMTPDialogueObserver) {
        observer.fragment(raw, side: side, secret: secret && side == .client, time: time)
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
