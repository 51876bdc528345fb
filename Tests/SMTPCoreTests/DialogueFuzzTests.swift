import Testing
@testable import SMTPCore

/// Random streams, random segmentation and gaps: the raw-concatenation invariant always holds.
@Suite("SMTPDialogue invariants under random input")
struct DialogueFuzzTests {
    static let clientTokens: [[UInt8]] = [
        "EHLO c\r\n", "MAIL FROM:<a@b>\r\n", "RCPT TO:<c@d>\r\n", "DATA\r\n", "BDAT 3\r\n", "BDAT 2 LAST\r\n", "BDAT 0 LAST\r\n",
        "BDAT -1\r\n", "AUTH LOGIN\r\n", "AUTH PLAIN abc\r\n", "YWJj\r\n", "*\r\n", ".\r\n", "..\r\n", ".", "\r", "\n", "abc",
        "x\r\n", "QUIT\r\n", "RSET\r\n", "NOOP\r\n", "\r\n.\r\n", "\u{0}",
    ].map { Array($0.utf8) } + [[0xFF]]
    static let serverTokens: [[UInt8]] = [
        "220 hi\r\n", "250 ok\r\n", "250-a\r\n", "354 go\r\n", "334 x\r\n", "235 ok\r\n", "454 no\r\n", "550 no\r\n", "junk\r\n",
        "250OK\r\n", "25", "0 x\r\n", "\n",
    ].map { Array($0.utf8) }

    static func randomSteps(_ random: inout SplitMix64, gaps: Bool) -> [Step] {
        (0..<40).map { _ in
            let roll = Int.random(in: 0..<10, using: &random)
            if gaps, roll == 0 {
                return .gap(Bool.random(using: &random) ? .client : .server, Int.random(in: 1...20, using: &random))
            }
            let tokens = roll < 6 ? clientTokens : serverTokens
            let bytes = (0..<Int.random(in: 1...3, using: &random)).flatMap { _ in tokens.randomElement(using: &random)! }
            return roll < 6 ? .clientBytes(bytes) : .serverBytes(bytes)
        }
    }

    @Test("without gaps: streams reproduced, every message begun is ended once, sizes match the data seen",
          arguments: 1...10 as ClosedRange<UInt64>)
    func noGaps(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var failures: [String] = []
        for iteration in 0..<100 {
            let t = play(Self.randomSteps(&random, gaps: false), checkStreams: false)
            var problems = streamProblems(t)
            for end in t.observer.messageEnds where end.size != t.observer.message(end.message).count {
                problems.append("message \(end.message) size \(end.size) != \(t.observer.message(end.message).count) bytes seen")
            }
            // Every message that began ends exactly once, and messages are numbered 1, 2, 3, ...
            let ended = t.observer.messageEnds.map(\.message)
            let begun = Set(t.observer.events.compactMap { if case .messageData(_, let n, _, _) = $0 { n } else { nil } })
            if ended != Array(0..<ended.count).map({ $0 + 1 }) || !begun.isSubset(of: Set(ended)) {
                problems.append("data for messages \(begun.sorted()), ends for \(ended)")
            }
            if !problems.isEmpty { failures.append("iteration \(iteration): " + problems.joined(separator: "; ")) }
        }
        #expect(failures.isEmpty, "\(failures.count) of 100 sessions; first: \(failures.first ?? "")")
    }

    @Test("with gaps: streams reproduced, gaps reported and summed", arguments: 1...10 as ClosedRange<UInt64>)
    func withGaps(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var failures: [String] = []
        for iteration in 0..<100 {
            let steps = Self.randomSteps(&random, gaps: true)
            let t = play(steps, checkStreams: false)
            var problems = streamProblems(t)
            let gapSteps = steps.filter { if case .gap = $0 { true } else { false } }.count
            let gapEvents = t.observer.events.filter { if case .gap = $0 { true } else { false } }.count
            if gapSteps != gapEvents { problems.append("\(gapSteps) gaps fed, \(gapEvents) reported") }
            if !problems.isEmpty { failures.append("iteration \(iteration): " + problems.joined(separator: "; ")) }
        }
        #expect(failures.isEmpty, "\(failures.count) of 100 sessions; first: \(failures.first ?? "")")
    }
}
