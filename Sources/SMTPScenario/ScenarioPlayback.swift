import SMTPCore

/// Plays a scenario's sessions as the bytes a client and server would exchange, through the same
/// ``SMTPDialogue`` that reads captures, so that scenarios are rendered (and later replayed and
/// compared) with the one grammar.
public enum ScenarioPlayback {
    /// One write on the wire.
    public struct Write: Sendable {
        public var side: Side
        public var bytes: [UInt8]
        /// Seconds since the session began.
        public var time: Double
    }

    /// The bytes of one session, in order: greeting, then each step's client part and reply.
    public static func writes(_ session: Scenario.Session) -> [Write] {
        var writes: [Write] = []
        var clock = session.greetingDelay ?? 0
        writes.append(Write(side: .server, bytes: session.greeting.bytes, time: clock))
        for step in session.steps {
            switch step.kind {
            case .unsolicited:
                break
            case .command, .auth:
                writes.append(Write(side: .client, bytes: step.client, time: clock))
            case .message where step.via == .data:
                var wire = DotStuffing.stuff(step.client, keepingBareLF: true)
                if step.fault == .drop {
                    // The server closes once the content is in, before the `.` line.
                    wire.removeLast(3)
                    if step.client.last != 0x0A, !step.client.isEmpty { wire.removeLast(2) }
                }
                writes.append(Write(side: .client, bytes: wire, time: clock))
            case .message:
                // BDAT: the recorded chunk sizes if they still fit the content, else one chunk.
                let fits = !step.chunks.isEmpty && step.chunks.allSatisfy { $0 >= 0 && $0 <= step.client.count }
                    && step.chunks.reduce(0) { $0 &+ $1 } == step.client.count
                let sizes = fits ? step.chunks : [step.client.count]
                var offset = 0
                for (index, size) in sizes.enumerated() {
                    let last = index == sizes.count - 1
                    writes.append(Write(side: .client, bytes: Array("BDAT \(size)\(last ? " LAST" : "")\r\n".utf8) + step.client[offset..<(offset + size)], time: clock))
                    offset += size
                    if !last {
                        let reply = index < step.chunkReplies.count ? step.chunkReplies[index] : "250 2.0.0 OK"
                        writes.append(Write(side: .server, bytes: reply.bytes, time: clock))
                    }
                }
            }
            clock += step.delay ?? 0
            if var reply = step.reply?.bytes {
                if step.fault == .partial, reply.last == 0x0A {
                    reply.removeLast()
                    if reply.last == 0x0D { reply.removeLast() }
                }
                writes.append(Write(side: .server, bytes: reply, time: clock))
            }
        }
        return writes
    }

    /// Renders the scenario's sessions to an observer, numbered from `firstSessionID`. Returns the
    /// number of sessions.
    @discardableResult
    public static func render(_ scenario: Scenario, source: String, firstSessionID: Int, into observer: some SessionObserver) -> Int {
        let base = parseTime(scenario.origin?.start) ?? Timestamp(nanoseconds: 0)
        let endpoints = scenario.origin?.connection?.components(separatedBy: " -> ")
        for (index, session) in scenario.sessions.enumerated() {
            let info = SessionInfo(
                id: firstSessionID + index,
                client: endpoints?.first ?? "client",
                server: endpoints?.count == 2 ? endpoints![1] : "scenario",
                start: base, source: source, handshakeSeen: true)
            observer.sessionStarted(info)
            observer.select(session: info.id)
            var dialogue = SMTPDialogue(expectGreeting: true, tlsIsDecrypted: true)
            var time = base
            if session.implicitTLS { observer.tlsStarted(.implicit, time: base) }
            for write in writes(session) {
                // Delays add up; a scenario spanning more than ~30 years of delays is clamped.
                time = Timestamp(nanoseconds: base.nanoseconds &+ Int64(min(write.time, 1e9) * 1_000_000_000))
                write.bytes.withUnsafeBytes { dialogue.receive($0, from: write.side, time: time, observer: observer) }
            }
            dialogue.finish(time: time, observer: observer)
            let reason: SessionEndReason = switch session.end {
            case .quit: .closed
            case .clientClose: .reset(by: .client)
            case .serverClose: .reset(by: .server)
            }
            observer.sessionEnded(info, summary: dialogue.summary, reason: session.steps.last?.fault != nil ? .reset(by: .server) : reason, time: time)
        }
        return scenario.sessions.count
    }

    /// `2026-11-29T01:37:40.030560Z` (UTC, up to nanoseconds).
    public static func parseTime(_ text: String?) -> Timestamp? {
        guard let text, text.hasSuffix("Z") else { return nil }
        let parts = text.dropLast().split(separator: "T")
        guard parts.count == 2 else { return nil }
        let date = parts[0].split(separator: "-").compactMap { Int($0) }
        let clock = parts[1].split(separator: ":")
        guard date.count == 3, clock.count == 3, let hour = Int(clock[0]), let minute = Int(clock[1]) else { return nil }
        let secondParts = clock[2].split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let secondText = secondParts.first, let second = Int(secondText), (0...60).contains(second),
              (0...23).contains(hour), (0...59).contains(minute), (1...12).contains(date[1]), (1...31).contains(date[2]),
              (0...9999).contains(date[0]) else { return nil }
        var nanos: Int64 = 0
        if secondParts.count == 2 {
            let digits = String(secondParts[1].prefix(9))
            guard !digits.isEmpty, digits.allSatisfy(\.isNumber), let value = Int64(digits) else { return nil }
            nanos = value * Int64([1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000][9 - digits.count])
        }
        // Days from civil (Howard Hinnant's algorithm).
        let (y, m, d) = (date[0] - (date[1] <= 2 ? 1 : 0), date[1], date[2])
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        let seconds = Int64(days) * 86400 + Int64(hour * 3600 + minute * 60 + second)
        return Timestamp(seconds: seconds, nanoseconds: nanos)
    }
}
