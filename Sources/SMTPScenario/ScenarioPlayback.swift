import SMTPCore

/// Plays a scenario's sessions as the bytes a client and server would exchange, through the same
/// ``SMTPDialogue`` that reads captures, so that scenarios are rendered (and later replayed and
/// compared) with the one grammar.
public enum ScenarioPlayback {
    /// One write on the wire.
    public struct Write: Sendable {
        /// Who writes.
        public var side: Side
        /// The bytes on the wire.
        public var bytes: [UInt8]
        /// Seconds since the session began.
        public var time: Double
        /// For the server's writes: whether the server or a recording proxy sent them
        /// (`reply-by`, `greeting-by`).
        public var replyBy: Scenario.ReplySource = .server
    }

    /// The bytes of one session, in order: the client's part of each step, and what the server
    /// does about it as ``SessionPlayer`` plays it (the same player the replay server runs, so
    /// replies, delays, faults, BDAT chunk replies and TLS are decided in one place). A server's
    /// waits count both as written (`delay`) and as recorded (`recorded-delay`): a transcript
    /// shows the session as it went.
    public static func writes(_ session: Scenario.Session) -> [Write] {
        var writes: [Write] = []
        var clock = 0.0
        guard let compiled = try? CompiledSession(session) else {
            // `check` rejects a pattern that does not compile; such a session shows its greeting only.
            return [Write(side: .server, bytes: session.greeting.bytes, time: 0, replyBy: session.greetingBy)]
        }
        let limits = SMTPServerDialogue.Limits().fitting([session])
        var player = SessionPlayer(session: compiled, scenarioName: "", options: .init(recordedTiming: true, limits: limits))
        player.followsScript = true
        /// Applies what the player did; `greeting` and the steps it played (those with a reply
        /// send one each, in order, after any BDAT chunk replies) say who sent each reply.
        func apply(_ actions: [SessionPlayer.Action], greeting: Bool = false, played steps: Range<Int>) {
            var sources = steps.compactMap { session.steps[$0].reply == nil ? nil : session.steps[$0].replyBy }
            if greeting { sources.insert(session.greetingBy, at: 0) }
            let sends = actions.filter { if case .send = $0 { true } else { false } }.count
            // BDAT chunk replies come first, from the server.
            sources.insert(contentsOf: Array(repeating: .server, count: max(0, sends - sources.count)), at: 0)
            for action in actions {
                switch action {
                case .pause(let seconds): clock += seconds
                case .send(let bytes): writes.append(Write(side: .server, bytes: bytes, time: clock, replyBy: sources.removeFirst()))
                case .startTLS: player.tlsStarted()
                case .close, .reset: break
                }
            }
        }
        func client(_ bytes: [UInt8], shown: [UInt8]? = nil) {
            writes.append(Write(side: .client, bytes: shown ?? bytes, time: clock))
            let first = player.index
            let actions = player.receive(bytes)
            apply(actions, played: first..<max(first, player.index))
        }
        let started = player.start()
        apply(started, greeting: true, played: 0..<player.index)
        for step in session.steps where !player.isFinished {
            switch step.kind {
            case .unsolicited:
                break  // the player sends it on its own
            case .command(let line), .auth(let line):
                client(line.bytes)
            case .message(let message) where message.via == .data:
                let wire = DotStuffing.stuff(message.content, keepingBareLF: true)
                if step.fault == .drop || step.fault == .reset {
                    // Shown as the server closing once the content is in, before the `.` line.
                    var shown = wire
                    shown.removeLast(3)
                    if message.content.last != 0x0A, !message.content.isEmpty { shown.removeLast(2) }
                    client(wire, shown: shown)
                } else {
                    client(wire)
                }
            case .message(let message):
                // BDAT: the recorded chunk sizes if they still fit the content, else one chunk.
                let content = message.content
                let fits = !message.chunks.isEmpty && message.chunks.allSatisfy { $0 >= 0 && $0 <= content.count }
                    && message.chunks.reduce(0) { $0 &+ $1 } == content.count
                let sizes = fits ? message.chunks : [content.count]
                var offset = 0
                for (index, size) in sizes.enumerated() {
                    let last = index == sizes.count - 1
                    client(SMTPCommand.bdat(size: size, last: last).encoded + content[offset..<(offset + size)])
                    offset += size
                }
            }
        }
        return writes
    }

    /// Why a session played from a scenario ends: as its `end` says, except after a fault: the
    /// server closed (`drop`, `partial`), reset the connection (`reset`), or, after a `stall`,
    /// whoever `end` names gave up waiting.
    public static func endReason(_ session: Scenario.Session) -> SessionEndReason {
        switch session.steps.last?.fault {
        case .drop, .partial: return .closed(by: .server)
        case .reset: return .reset(by: .server)
        case .stall, nil: break
        }
        return switch session.end {
        case .quit: .closed(by: .server)
        case .clientClose: .closed(by: .client)
        case .serverClose: .closed(by: .server)
        }
    }

    /// Renders the scenario's sessions to an observer, numbered from `firstSessionID`. Returns the
    /// number of sessions.
    @discardableResult
    public static func render(_ scenario: Scenario, source: String, firstSessionID: Int, into observer: some SessionObserver) -> Int {
        let start = scenario.origin?.start.flatMap(Timestamp.init(rfc3339:))
        let base = start ?? Timestamp(nanoseconds: 0)
        let endpoints = scenario.origin?.connection?.components(separatedBy: " -> ")
        let known = start != nil && endpoints?.count == 2
        for (index, session) in scenario.sessions.enumerated() {
            var name = session.name ?? scenario.name
            if session.name == nil, scenario.sessions.count > 1 { name += " (session \(index + 1) of \(scenario.sessions.count))" }
            let info = SessionInfo(
                id: firstSessionID + index,
                client: known ? endpoints![0] : "client",
                server: known ? endpoints![1] : "server",
                start: base, source: source, handshakeSeen: true,
                name: known ? nil : "scenario '" + name + "'")
            observer.sessionStarted(info)
            observer.select(session: info.id)
            var dialogue = SMTPDialogue(expectGreeting: true, tlsIsDecrypted: true)
            let marker = ProxyReplyMarker(observer)
            var time = base
            if session.implicitTLS {
                observer.tlsStarted(TLSStart(mode: .implicit, state: .decrypted(version: nil, cipherSuite: nil)), time: base)
            }
            for write in writes(session) {
                // Delays add up; a scenario spanning more than ~30 years of delays is clamped.
                time = Timestamp(nanoseconds: base.nanoseconds &+ Int64(min(write.time, 1e9) * 1_000_000_000))
                // Each write is a whole reply (a partial one ends the session): the reply the
                // dialogue reports during it, or at the end, is that write's.
                if write.side == .server { marker.byProxy = write.replyBy == .proxy }
                _ = write.bytes.withUnsafeBytes { dialogue.receive($0, from: write.side, time: time, observer: marker) }
            }
            dialogue.finish(time: time, observer: marker)
            observer.sessionEnded(info, summary: dialogue.summary, reason: endReason(session), time: time)
        }
        return scenario.sessions.count
    }
}

/// Passes a dialogue on to an observer, flagging the replies a recording proxy sent in the
/// server's place (``LineFlags/byProxy``): transcripts show them `[by_proxy]`, and the scenario
/// recorder writes them `reply-by: proxy`. The proxy uses it as it records; playback as it
/// renders such a scenario.
public final class ProxyReplyMarker<Base: SMTPDialogueObserver>: SMTPDialogueObserver {
    let base: Base
    /// Whether the server bytes being read now came from the proxy.
    public var byProxy = false

    public init(_ base: Base) { self.base = base }

    public func reply(_ raw: UnsafeRawBufferPointer, lineCount: Int, code: Int?, context: ReplyContext, flags: LineFlags, time: Timestamp) {
        base.reply(raw, lineCount: lineCount, code: code, context: context, flags: byProxy ? flags.union(.byProxy) : flags, time: time)
    }

    public func command(_ raw: UnsafeRawBufferPointer, verb: SMTPVerb, flags: LineFlags, secret: Range<Int>?, time: Timestamp) {
        base.command(raw, verb: verb, flags: flags, secret: secret, time: time)
    }

    public func authResponse(_ raw: UnsafeRawBufferPointer, secret: Range<Int>?, flags: LineFlags, time: Timestamp) {
        base.authResponse(raw, secret: secret, flags: flags, time: time)
    }

    public func messageBegan(message: Int, transfer: MessageTransfer, bytesMissingBefore: Bool, time: Timestamp) {
        base.messageBegan(message: message, transfer: transfer, bytesMissingBefore: bytesMissingBefore, time: time)
    }

    public func messageData(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, atLineStart: Bool, time: Timestamp) {
        base.messageData(raw, message: message, transfer: transfer, atLineStart: atLineStart, time: time)
    }

    public func messageEnd(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, size: Int, complete: Bool, time: Timestamp) {
        base.messageEnd(raw, message: message, transfer: transfer, size: size, complete: complete, time: time)
    }

    public func fragment(_ raw: UnsafeRawBufferPointer, side: Side, secret: Bool, time: Timestamp) {
        base.fragment(raw, side: side, secret: secret, time: time)
    }

    public func gap(side: Side, bytes: Int, time: Timestamp) { base.gap(side: side, bytes: bytes, time: time) }

    public func tlsStarted(_ start: TLSStart, time: Timestamp) { base.tlsStarted(start, time: time) }

    public func encrypted(side: Side, bytes: Int, time: Timestamp) { base.encrypted(side: side, bytes: bytes, time: time) }
}
