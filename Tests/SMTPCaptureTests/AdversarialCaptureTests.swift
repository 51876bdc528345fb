import Foundation
import SMTPCapture
import SMTPCore
import SMTPFiles
import SMTPScenario
import SMTPTranscript
import Testing

/// Property tests over generated captures of known dialogues, damaged in every way captures are:
/// random segment sizes, reordering, duplicates, overlaps with the same and with other bytes,
/// segments lost to the capture (acknowledged) and to the network (retransmitted), snap-length
/// cuts, sequence numbers that wrap, FIN and RST in every position, link types and VLAN tags,
/// IPv6, captures that begin mid-session. The oracle is the intended byte streams, with gaps
/// where bytes were lost. Each failure names its seed and keeps its pcap.
@Suite struct AdversarialCaptureTests {
    static let keptFailures = FileManager.default.temporaryDirectory.appendingPathComponent("smtptape-adversarial-failures")

    /// Checks every property for one capture; returns what is wrong (empty when all hold).
    static func problems(_ intended: IntendedDialogue, _ recipe: AdversarialCapture.Recipe) throws -> [String] {
        let capture = AdversarialCapture.build(intended, recipe)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("adversarial-\(UUID().uuidString).pcap")
        defer { try? FileManager.default.removeItem(at: url) }
        try capture.pcap.write(to: url)
        var problems: [String] = []

        // 1. The streams: every byte where the oracle says, gaps of the right size at the right place.
        let observer = StreamObserver()
        let extractor = SMTPExtractor(observer: observer)
        _ = extractor.read(file: url.path)
        if observer.sessions.count > 1 {
            problems.append("\(observer.sessions.count) sessions, expected at most one")
        }
        if let session = observer.sessions.first?.id {
            for side in [Side.client, .server] {
                var want = capture.expected[side] ?? []
                var got = observer.pieces[session]?[side] ?? []
                if let tls = observer.tlsAt[session]?[side] {
                    // After TLS the bytes are counted, not parsed: compare what came before.
                    want = Self.prefix(want, length: tls)
                    let total = Self.length(got) + (observer.encrypted[session]?[side] ?? 0)
                    // A trailing gap is declared only as far as the capture shows it (a snap-length
                    // cut is; segments lost at the end with nothing after them are not).
                    let most = Self.length(capture.expected[side] ?? []), least = Self.length(Self.withoutTrailingGap(capture.expected[side] ?? []))
                    if !(least...most).contains(total) {
                        problems.append("\(side.name): \(Self.length(got)) plaintext + encrypted bytes = \(total), expected \(Self.length(capture.expected[side] ?? []))")
                    }
                }
                if got != want, got != Self.withoutTrailingGap(want) {
                    got = Self.withoutTrailingGap(got)
                    if got != Self.withoutTrailingGap(want) {
                        problems.append("\(side.name) stream differs: got \(Self.describe(got)), expected \(Self.describe(want)) \(Self.firstDifference(got, want))")
                    }
                }
            }
        }

        // 2. Messages are never joined across a hole: each .eml is the intended message, or a prefix
        //    of it cut at the first byte the capture missed.
        if recipe.handshake, recipe.skipFirst == 0, let message = capture.dialogue.messages.first {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("adversarial-eml-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: folder) }
            let output = try OutputFolder(path: folder.path, replaceExisting: false)
            _ = SMTPExtractor(observer: MessageFileWriter(folder: output)).read(file: url.path)
            for path in try output.commit() {
                let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
                let complete = !path.hasSuffix(".incomplete.eml")
                if complete ? bytes != message : !message.starts(with: bytes) {
                    problems.append("\(URL(fileURLWithPath: path).lastPathComponent) (\(bytes.count) bytes) is not \(complete ? "the message" : "a prefix of the message") (\(message.count) bytes)")
                }
            }
        }

        // 3. Secrets never show, not even in part, in a redacted transcript or scenario.
        var scenarios: [String] = []
        let recorder = ScenarioRecorder { _ in nil }
        recorder.onScenario = { _, scenario in scenarios.append(ScenarioWriter.yaml(scenario)) }
        _ = SMTPExtractor(observer: recorder).read(file: url.path)
        if !intended.secrets.isEmpty {
            let text = try Fixtures.render([url.path]) { TextTranscriptRenderer(output: $0, data: .full) }
            for secret in intended.secrets {
                for (name, output) in [("transcript", text)] + scenarios.map({ ("scenario", $0) }) {
                    if let leak = Self.leak(of: secret, in: output) {
                        problems.append("\(name) shows '\(leak)' of the secret \(secret)")
                    }
                }
            }
        }

        // 4. Whatever extract writes, check accepts.
        for yaml in scenarios {
            let result = ScenarioReader.parse(yaml, file: "extracted.yaml")
            if !result.diagnostics.isEmpty {
                problems.append("the extracted scenario does not pass check: \(result.diagnostics.map(\.description))")
            }
        }

        if !problems.isEmpty {
            try FileManager.default.createDirectory(at: keptFailures, withIntermediateDirectories: true)
            let kept = keptFailures.appendingPathComponent("\(intended.family.rawValue)-seed-\(recipe.seed)-\(abs(recipe.description.hashValue)).pcap")
            try capture.pcap.write(to: kept)
            problems = ["\(intended.family.rawValue), \(recipe) (pcap kept at \(kept.path)):"] + problems.map { "  " + $0 }
        }
        return problems
    }

    /// The longest piece (of at least 8 characters, or the whole secret if shorter) of `secret`
    /// that appears in `text`.
    static func leak(of secret: String, in text: String) -> String? {
        let characters = Array(secret)
        let size = min(8, characters.count)
        guard size > 0 else { return nil }
        for start in 0...(characters.count - size) {
            let piece = String(characters[start..<(start + size)])
            if text.contains(piece) { return piece }
        }
        return nil
    }

    static func length(_ pieces: [AdversarialCapture.Piece]) -> Int {
        pieces.reduce(0) { total, piece in
            switch piece {
            case .bytes(let b): total + b.count
            case .gap(let n): total + n
            }
        }
    }

    static func prefix(_ pieces: [AdversarialCapture.Piece], length: Int) -> [AdversarialCapture.Piece] {
        var out: [AdversarialCapture.Piece] = []
        var left = length
        for piece in pieces where left > 0 {
            switch piece {
            case .bytes(let b): out.append(.bytes(Array(b.prefix(left)))); left -= min(left, b.count)
            case .gap(let n): out.append(.gap(min(n, left))); left -= min(left, n)
            }
        }
        return out
    }

    static func withoutTrailingGap(_ pieces: [AdversarialCapture.Piece]) -> [AdversarialCapture.Piece] {
        if case .gap? = pieces.last { return Array(pieces.dropLast()) }
        return pieces
    }

    static func describe(_ pieces: [AdversarialCapture.Piece]) -> String {
        "[" + pieces.map(\.description).joined(separator: ", ") + "]"
    }

    static func firstDifference(_ got: [AdversarialCapture.Piece], _ want: [AdversarialCapture.Piece]) -> String {
        func flat(_ pieces: [AdversarialCapture.Piece]) -> [Int] {
            pieces.flatMap { piece -> [Int] in
                switch piece {
                case .bytes(let b): b.map(Int.init)
                case .gap(let n): Array(repeating: -1, count: n)
                }
            }
        }
        let a = flat(got), b = flat(want)
        guard let index = zip(a, b).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset ?? (a.count != b.count ? min(a.count, b.count) : nil) else { return "" }
        return "(first difference at byte \(index))"
    }

    static func run(_ family: IntendedDialogue.Family, dialogueSeed: UInt64, recipes: [AdversarialCapture.Recipe]) throws -> (cases: Int, failures: [String]) {
        var rng = SplitMix64(seed: dialogueSeed)
        let intended = IntendedDialogue.random(family, &rng)
        var failures: [String] = []
        for recipe in recipes {
            let found = try problems(intended, recipe)
            if !found.isEmpty { failures.append(found.joined(separator: "\n")) }
        }
        return (recipes.count, failures)
    }

    // MARK: Random cases

    /// Seeded cases per family: 60 by default; SMTPTAPE_ADVERSARIAL_CASES asks for more (and
    /// SMTPTAPE_ADVERSARIAL_FIRST for where to start), for a longer hunt.
    static let randomCases = UInt64(ProcessInfo.processInfo.environment["SMTPTAPE_ADVERSARIAL_CASES"] ?? "") ?? 60
    static let firstSeed = UInt64(ProcessInfo.processInfo.environment["SMTPTAPE_ADVERSARIAL_FIRST"] ?? "") ?? 1

    @Test(arguments: IntendedDialogue.Family.allCases)
    func randomDamage(family: IntendedDialogue.Family) throws {
        // The dialogue varies with the seed too.
        var failures: [String] = []
        for seed in Self.firstSeed..<(Self.firstSeed + Self.randomCases) {
            let recipe = AdversarialCapture.Recipe.random(seed: seed &* 7919 &+ UInt64(IntendedDialogue.Family.allCases.firstIndex(of: family)!) &* 1_000_003)
            failures += try Self.run(family, dialogueSeed: seed, recipes: [recipe]).failures
        }
        #expect(failures.isEmpty, "\(failures.count) of \(Self.randomCases) cases failed:\n\(failures.prefix(3).joined(separator: "\n"))")
    }

    // MARK: Systematic cases

    /// A gap in every position: each data segment in turn lost to the capture (the receiver's
    /// ACKs show it), then each in turn lost to the network and retransmitted.
    @Test(arguments: IntendedDialogue.Family.allCases)
    func aGapInEveryPosition(family: IntendedDialogue.Family) throws {
        var rng = SplitMix64(seed: 42)
        let intended = IntendedDialogue.random(family, &rng)
        let segments = intended.writes.map { ($0.bytes.count + 59) / 60 }.reduce(0, +)
        var recipes: [AdversarialCapture.Recipe] = []
        for index in 0..<segments {
            var lost = AdversarialCapture.Recipe(seed: UInt64(index))
            lost.maxSegment = 60
            lost.forcedCaptureLoss = [index]
            recipes.append(lost)
            var retransmitted = lost
            retransmitted.forcedCaptureLoss = []
            retransmitted.forcedNetworkLoss = [index]
            recipes.append(retransmitted)
        }
        let (cases, failures) = try Self.run(family, dialogueSeed: 42, recipes: recipes)
        #expect(failures.isEmpty, "\(failures.count) of \(cases) cases failed:\n\(failures.prefix(3).joined(separator: "\n"))")
    }

    /// The connection reset by either side after every write, and closed by either side first.
    @Test(arguments: IntendedDialogue.Family.allCases)
    func endingsInEveryPosition(family: IntendedDialogue.Family) throws {
        var rng = SplitMix64(seed: 7)
        let intended = IntendedDialogue.random(family, &rng)
        var recipes: [AdversarialCapture.Recipe] = []
        for kept in 0...intended.writes.count {
            for ending in [AdversarialCapture.Recipe.Ending.rst(.client), .rst(.server), .fin(.client), .fin(.server), .none] {
                var recipe = AdversarialCapture.Recipe(seed: UInt64(kept))
                recipe.writesKept = kept
                recipe.ending = ending
                recipes.append(recipe)
            }
        }
        let (cases, failures) = try Self.run(family, dialogueSeed: 7, recipes: recipes)
        #expect(failures.isEmpty, "\(failures.count) of \(cases) cases failed:\n\(failures.prefix(3).joined(separator: "\n"))")
    }

    /// Captures that begin after the session did: the first 1 to 15 packets missing.
    @Test(arguments: IntendedDialogue.Family.allCases)
    func capturesThatBeginMidSession(family: IntendedDialogue.Family) throws {
        var recipes: [AdversarialCapture.Recipe] = []
        for skip in 1...15 {
            var recipe = AdversarialCapture.Recipe(seed: UInt64(skip))
            recipe.skipFirst = skip
            recipe.maxSegment = 200
            recipes.append(recipe)
        }
        let (cases, failures) = try Self.run(family, dialogueSeed: 11, recipes: recipes)
        #expect(failures.isEmpty, "\(failures.count) of \(cases) cases failed:\n\(failures.prefix(3).joined(separator: "\n"))")
    }
}
