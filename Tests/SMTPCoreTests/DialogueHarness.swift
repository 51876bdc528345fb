import Testing
@testable import SMTPCore

/// One input to a dialogue: the next in-order bytes of a side, or bytes missing from the capture.
enum Step {
    case client(ByteString)
    case server(ByteString)
    case gap(Side, Int)

    /// Raw bytes for the client (for TLS records and non-UTF-8 input).
    static func clientBytes(_ bytes: [UInt8]) -> Step { .client(ByteString(bytes)) }
    static func serverBytes(_ bytes: [UInt8]) -> Step { .server(ByteString(bytes)) }
}

/// A dialogue after a script was played through it.
struct Transcript {
    var dialogue: SMTPDialogue
    let observer: RecordingObserver
    /// Everything fed per side, gaps excluded.
    var clientInput: [UInt8] = []
    var serverInput: [UInt8] = []
    /// Gap bytes announced per side.
    var clientGaps = 0
    var serverGaps = 0

    var summary: SessionSummary { dialogue.summary }
    var log: [String] { observer.log }

    func input(_ side: Side) -> [UInt8] { side == .client ? clientInput : serverInput }
    func gaps(_ side: Side) -> Int { side == .client ? clientGaps : serverGaps }
}

/// Plays `steps` through a fresh dialogue, one timestamp per step, then (by default) `finish`es it.
///
/// Every run is checked against invariant (1) (see ``expectStreamsReproduced(_:sourceLocation:)``),
/// with failures attributed to the calling test.
func play(_ steps: [Step], expectGreeting: Bool = true, finish: Bool = true, checkStreams: Bool = true,
          sourceLocation: SourceLocation = #_sourceLocation) -> Transcript {
    var transcript = Transcript(dialogue: SMTPDialogue(expectGreeting: expectGreeting), observer: RecordingObserver())
    var second: Int64 = 1_000
    for step in steps {
        let time = Timestamp(seconds: second, nanoseconds: 0)
        second += 1
        switch step {
        case .client(let bytes):
            transcript.clientInput += bytes.bytes
            bytes.bytes.withUnsafeBytes { transcript.dialogue.receive($0, from: .client, time: time, observer: transcript.observer) }
        case .server(let bytes):
            transcript.serverInput += bytes.bytes
            bytes.bytes.withUnsafeBytes { transcript.dialogue.receive($0, from: .server, time: time, observer: transcript.observer) }
        case .gap(let side, let count):
            if side == .client { transcript.clientGaps += count } else { transcript.serverGaps += count }
            transcript.dialogue.receiveGap(count, from: side, time: time, observer: transcript.observer)
        }
    }
    if finish {
        transcript.dialogue.finish(time: Timestamp(seconds: second, nanoseconds: 0), observer: transcript.observer)
    }
    // An unfinished dialogue may still hold a partial line, so the check waits for `finish`.
    if checkStreams, finish { expectStreamsReproduced(transcript, sourceLocation: sourceLocation) }
    return transcript
}

/// `bytes` cut into pieces of `size` bytes (the last may be shorter).
func chunks(_ bytes: [UInt8], size: Int) -> [[UInt8]] {
    stride(from: 0, to: bytes.count, by: size).map { Array(bytes[$0..<min($0 + size, bytes.count)]) }
}

/// `bytes` cut at the given offsets (sorted, within bounds); empty pieces are dropped.
func pieces(_ bytes: [UInt8], cutAt offsets: [Int]) -> [[UInt8]] {
    var out: [[UInt8]] = []
    var start = 0
    for offset in offsets + [bytes.count] where offset > start {
        out.append(Array(bytes[start..<offset]))
        start = offset
    }
    return out
}

extension Array where Element == UInt8 {
    init(_ string: String) { self = Array(string.utf8) }
}

/// Invariant (1): per side, the `raw` arguments concatenated reproduce the input up to TLS, and
/// whatever follows TLS is counted as encrypted, byte for byte. (A gap after TLS is counted as
/// encrypted bytes instead of being reported as a gap.) Every gap is counted in the summary.
///
/// Returns what is wrong, in words; empty when the invariant holds.
func streamProblems(_ transcript: Transcript) -> [String] {
    var problems: [String] = []
    for side in [Side.client, .server] {
        let input = transcript.input(side)
        let raw = transcript.observer.raw(side)
        let encrypted = transcript.observer.encryptedBytes(side)
        let reportedGaps = transcript.observer.gapBytes(side)
        let encryptedGaps = transcript.gaps(side) - reportedGaps
        if let mismatch = (0..<min(raw.count, input.count)).first(where: { raw[$0] != input[$0] }) ?? (raw.count > input.count ? input.count : nil) {
            let context = max(0, mismatch - 8)
            problems.append("\(side.name): raw bytes differ from the input at offset \(mismatch): raw "
                            + "\(ByteString(raw[context..<min(raw.count, mismatch + 16)])) vs input \(ByteString(input[context..<min(input.count, mismatch + 16)]))")
        }
        if raw.count + encrypted != input.count + encryptedGaps {
            problems.append("\(side.name): \(raw.count) raw + \(encrypted) encrypted bytes != \(input.count) fed + \(encryptedGaps) gap bytes after TLS")
        }
        if encryptedGaps > 0, transcript.observer.tlsModes.isEmpty {
            problems.append("\(side.name): \(encryptedGaps) gap bytes were not reported, and TLS never started")
        }
    }
    if transcript.summary.gapBytes != transcript.clientGaps + transcript.serverGaps {
        problems.append("summary.gapBytes \(transcript.summary.gapBytes) != \(transcript.clientGaps + transcript.serverGaps) announced")
    }
    return problems
}

/// Records an issue for each way ``streamProblems(_:)`` finds the invariant broken.
func expectStreamsReproduced(_ transcript: Transcript, sourceLocation: SourceLocation = #_sourceLocation) {
    for problem in streamProblems(transcript) {
        Issue.record(Comment(rawValue: problem), sourceLocation: sourceLocation)
    }
}

/// A small deterministic generator (SplitMix64) so randomised tests are reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
