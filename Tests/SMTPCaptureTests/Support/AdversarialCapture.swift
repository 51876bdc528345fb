import Foundation
import SMTPCapture
import SMTPCore

/// A dialogue as the peers meant it: the writes each side made, in order. The capture generator
/// turns it into packets, damaged in chosen ways, and works out what a reader must get back.
struct IntendedDialogue {
    enum Family: String, CaseIterable {
        case plain, pipelined, bdat, authLogin, authPlain, startTLS
    }

    var family: Family
    var writes: [(side: Side, bytes: [UInt8])]
    /// Credentials in the dialogue: none of them may appear in redacted output, even in part.
    var secrets: [String] = []
    /// The messages sent (unstuffed content), in order.
    var messages: [[UInt8]] = []

    func stream(_ side: Side) -> [UInt8] { writes.filter { $0.side == side }.flatMap(\.bytes) }

    static func random(_ family: Family, _ rng: inout SplitMix64) -> IntendedDialogue {
        var d = IntendedDialogue(family: family, writes: [])
        func c(_ text: String) { d.writes.append((.client, Array(text.utf8))) }
        func s(_ text: String) { d.writes.append((.server, Array(text.utf8))) }
        func message() -> [UInt8] {
            var lines = ["Subject: test \(Int.random(in: 1...999, using: &rng))", "Date: Tue, 04 Mar 2025 07:54:50 +0000", ""]
            for _ in 0..<Int.random(in: 1...30, using: &rng) {
                let roll = Int.random(in: 0..<8, using: &rng)
                lines.append(roll == 0 ? "." + String(repeating: ".", count: Int.random(in: 0...2, using: &rng)) + "dot line"
                             : roll == 1 ? "" : String(repeating: "word ", count: Int.random(in: 1...30, using: &rng)))
            }
            return Array((lines.joined(separator: "\r\n") + "\r\n").utf8)
        }
        s("220 mx.example.com ESMTP\r\n")
        c("EHLO client.example.com\r\n")
        s("250-mx.example.com\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n")
        switch family {
        case .authLogin:
            let user = "user\(Int.random(in: 100...999, using: &rng))", password = "pw-\(UInt32.random(in: 1...UInt32.max, using: &rng))"
            let user64 = Data(user.utf8).base64EncodedString(), password64 = Data(password.utf8).base64EncodedString()
            d.secrets = [user64, password64, password]
            c("AUTH LOGIN\r\n"); s("334 VXNlcm5hbWU6\r\n")
            c(user64 + "\r\n"); s("334 UGFzc3dvcmQ6\r\n")
            c(password64 + "\r\n"); s("235 2.7.0 Authentication successful\r\n")
        case .authPlain:
            let password = "pw-\(UInt32.random(in: 1...UInt32.max, using: &rng))"
            let token = Data(("\0alice\0" + password).utf8).base64EncodedString()
            d.secrets = [token, password]
            c("AUTH PLAIN " + token + "\r\n"); s("235 2.7.0 Authentication successful\r\n")
        case .startTLS:
            c("STARTTLS\r\n"); s("220 2.0.0 Ready to start TLS\r\n")
            // TLS records: a handshake record header, then noise.
            for side in [Side.client, .server, .client, .server] {
                var record: [UInt8] = [0x16, 0x03, 0x01, 0x02, 0x00]
                for _ in 0..<Int.random(in: 100...1500, using: &rng) { record.append(UInt8.random(in: 0...255, using: &rng)) }
                d.writes.append((side, record))
            }
            return d
        default:
            break
        }
        let rcpts = Int.random(in: 1...3, using: &rng)
        let body = message()
        d.messages = [body]
        switch family {
        case .pipelined:
            c("MAIL FROM:<alice@example.com>\r\n" + (0..<rcpts).map { "RCPT TO:<r\($0)@example.net>\r\n" }.joined() + "DATA\r\n")
            s("250 2.1.0 Ok\r\n" + String(repeating: "250 2.1.5 Ok\r\n", count: rcpts) + "354 End data with <CR><LF>.<CR><LF>\r\n")
            d.writes.append((.client, DotStuffing.stuff(body)))
            s("250 2.0.0 Ok: queued\r\n")
        case .bdat:
            c("MAIL FROM:<alice@example.com>\r\n"); s("250 2.1.0 Ok\r\n")
            for r in 0..<rcpts { c("RCPT TO:<r\(r)@example.net>\r\n"); s("250 2.1.5 Ok\r\n") }
            var offset = 0
            while offset < body.count {
                let size = min(body.count - offset, Int.random(in: 1...600, using: &rng))
                let last = offset + size == body.count
                d.writes.append((.client, Array("BDAT \(size)\(last ? " LAST" : "")\r\n".utf8) + body[offset..<(offset + size)]))
                s(last ? "250 2.0.0 Ok: queued\r\n" : "250 2.0.0 \(size) octets received\r\n")
                offset += size
            }
        default:
            c("MAIL FROM:<alice@example.com>\r\n"); s("250 2.1.0 Ok\r\n")
            for r in 0..<rcpts { c("RCPT TO:<r\(r)@example.net>\r\n"); s("250 2.1.5 Ok\r\n") }
            c("DATA\r\n"); s("354 End data with <CR><LF>.<CR><LF>\r\n")
            d.writes.append((.client, DotStuffing.stuff(body)))
            s("250 2.0.0 Ok: queued\r\n")
        }
        c("QUIT\r\n"); s("221 2.0.0 Bye\r\n")
        return d
    }
}

/// What a capture of an intended dialogue looks like, and what a reader must make of it.
struct AdversarialCapture {
    /// How the capture was damaged, for the failure message.
    struct Recipe: CustomStringConvertible {
        var seed: UInt64
        var link = PcapBuilder.Link.ethernet
        var vlanTags: [UInt16] = []
        var ipv6 = false
        var nanosecond = false
        var handshake = true
        /// Capture packets dropped from the start (the capture began mid-session).
        var skipFirst = 0
        var clientISN: UInt32 = 1000
        var serverISN: UInt32 = 5000
        var maxSegment = 1460
        /// Per data segment, in percent.
        var captureLoss = 0, networkLoss = 0, duplicates = 0, conflicts = 0, reorder = 0
        /// Pure ACKs from the receiver between segments, in percent.
        var pureACKs = 30
        var snapLength = 65535
        /// Who ends the connection, and how.
        enum Ending { case fin(Side), rst(Side), none }
        var ending = Ending.fin(.server)
        /// The dialogue is cut after this many writes (an RST or a capture that stops).
        var writesKept: Int?
        /// Forced fates for data segments by index (systematic cases).
        var forcedCaptureLoss: Set<Int> = []
        var forcedNetworkLoss: Set<Int> = []

        var description: String {
            "seed \(seed): link \(link)\(vlanTags.isEmpty ? "" : " vlan \(vlanTags.map { String($0, radix: 16) })")\(ipv6 ? " ipv6" : "")"
                + "\(handshake ? "" : " no-handshake") skip \(skipFirst) isn \(clientISN)/\(serverISN) mss \(maxSegment)"
                + " loss \(captureLoss)/\(networkLoss)% dup \(duplicates)% conflict \(conflicts)% reorder \(reorder)% snap \(snapLength)"
                + " ending \(ending) writes \(writesKept.map(String.init) ?? "all")"
                + (forcedCaptureLoss.isEmpty ? "" : " lose \(forcedCaptureLoss.sorted())")
                + (forcedNetworkLoss.isEmpty ? "" : " retransmit \(forcedNetworkLoss.sorted())")
        }

        static func random(seed: UInt64) -> Recipe {
            var rng = SplitMix64(seed: seed)
            var r = Recipe(seed: seed)
            r.link = [.ethernet, .ethernet, .null, .raw, .linuxSLL, .linuxSLL2].randomElement(using: &rng)!
            if r.link == .ethernet, Bool.random(using: &rng) { r.vlanTags = [[0x8100], [0x88A8, 0x8100], [0x9100]].randomElement(using: &rng)! }
            r.ipv6 = Int.random(in: 0..<4, using: &rng) == 0
            r.nanosecond = Bool.random(using: &rng)
            r.handshake = Int.random(in: 0..<5, using: &rng) != 0
            if Int.random(in: 0..<8, using: &rng) == 0 { r.skipFirst = Int.random(in: 1...8, using: &rng) }
            // Sequence numbers that wrap around within the session, now and then.
            r.clientISN = Int.random(in: 0..<3, using: &rng) == 0 ? UInt32.max - UInt32.random(in: 0...3000, using: &rng) : UInt32.random(in: 0...UInt32.max, using: &rng)
            r.serverISN = Int.random(in: 0..<3, using: &rng) == 0 ? UInt32.max - UInt32.random(in: 0...3000, using: &rng) : UInt32.random(in: 0...UInt32.max, using: &rng)
            r.maxSegment = [1460, 536, 100, 17, 3].randomElement(using: &rng)!
            r.captureLoss = [0, 0, 2, 10].randomElement(using: &rng)!
            r.networkLoss = [0, 0, 5, 20].randomElement(using: &rng)!
            r.duplicates = [0, 5, 20].randomElement(using: &rng)!
            r.conflicts = [0, 0, 5].randomElement(using: &rng)!
            r.reorder = [0, 0, 10, 40].randomElement(using: &rng)!
            r.pureACKs = [0, 30, 80].randomElement(using: &rng)!
            if Int.random(in: 0..<6, using: &rng) == 0 {
                // Snap-length cuts: no second copies then (which bytes win would depend on timing).
                r.snapLength = Int.random(in: 80...300, using: &rng)
                r.duplicates = 0
                r.conflicts = 0
                r.networkLoss = 0
            }
            r.ending = [.fin(.client), .fin(.server), .rst(.client), .rst(.server), .none].randomElement(using: &rng)!
            return r
        }
    }

    /// What each direction's reader must deliver: bytes, and gaps of a given size.
    enum Piece: Equatable, CustomStringConvertible {
        case bytes([UInt8])
        case gap(Int)
        var description: String {
            switch self {
            case .bytes(let b): "\(b.count) bytes"
            case .gap(let n): "gap \(n)"
            }
        }
    }

    var pcap: PcapBuilder
    /// Per direction, the pieces a reader must deliver in order. A trailing gap may also be absent
    /// (nothing later shows that those bytes were sent).
    var expected: [Side: [Piece]]
    /// The dialogue as far as it was kept (an RST may cut it).
    var dialogue: IntendedDialogue

    /// A data segment on its way: where it lies in its direction's stream.
    struct Segment {
        var side: Side
        var offset: Int
        var bytes: [UInt8]
        /// The receiver got it, but the capture did not.
        var captureLost = false
        /// Neither got it: a retransmission follows.
        var networkLost = false
    }

    static func build(_ intended: IntendedDialogue, _ recipe: Recipe) -> AdversarialCapture {
        var rng = SplitMix64(seed: recipe.seed &* 0x9E37_79B9 &+ 17)
        var dialogue = intended
        if let kept = recipe.writesKept { dialogue.writes = Array(dialogue.writes.prefix(kept)) }
        var pcap = PcapBuilder(link: recipe.link)
        pcap.vlanTags = recipe.vlanTags
        pcap.nanosecond = recipe.nanosecond
        pcap.snapLength = recipe.snapLength
        let client: PcapBuilder.Endpoint = recipe.ipv6 ? .v6(last: 1, port: 40123) : .v4(192, 0, 2, 1, port: 40123)
        let server: PcapBuilder.Endpoint = recipe.ipv6 ? .v6(last: 25, port: 25) : .v4(192, 0, 2, 25, port: 25)
        let isn: [Side: UInt32] = [.client: recipe.clientISN, .server: recipe.serverISN]
        // Captured packets, in capture order, before any are skipped.
        struct Packet { var side: Side; var offset: Int; var bytes: [UInt8]; var flags: UInt8; var ack: Int; var isData: Bool }
        var packets: [Packet] = []
        // Per direction: bytes sent, and bytes the receiver has contiguously (what it acknowledges).
        var sent: [Side: Int] = [.client: 0, .server: 0]
        var received: [Side: Int] = [.client: 0, .server: 0]
        // Bytes per stream position, in the order copies were captured (the first one wins).
        var firstCopy: [Side: [Int: UInt8]] = [.client: [:], .server: [:]]
        var cutTail: [Side: Set<Int>] = [.client: [], .server: []]
        let first = 1  // stream offset 0 is the SYN
        let synFlags: UInt8 = PcapBuilder.syn
        if recipe.handshake {
            packets.append(Packet(side: .client, offset: -1, bytes: [], flags: synFlags, ack: -1, isData: false))
            packets.append(Packet(side: .server, offset: -1, bytes: [], flags: synFlags | PcapBuilder.ack, ack: 0, isData: false))
            packets.append(Packet(side: .client, offset: 0, bytes: [], flags: PcapBuilder.ack, ack: 0, isData: false))
        }
        var dataIndex = 0
        for write in dialogue.writes {
            let side = write.side
            let peer: Side = side == .client ? .server : .client
            // Cut the write into segments.
            var segments: [Segment] = []
            var offset = 0
            while offset < write.bytes.count {
                let size = min(write.bytes.count - offset, Int.random(in: 1...recipe.maxSegment, using: &rng))
                var segment = Segment(side: side, offset: sent[side]! + offset, bytes: Array(write.bytes[offset..<(offset + size)]))
                if recipe.forcedCaptureLoss.contains(dataIndex) || Int.random(in: 0..<100, using: &rng) < recipe.captureLoss {
                    segment.captureLost = true
                } else if recipe.forcedNetworkLoss.contains(dataIndex) || Int.random(in: 0..<100, using: &rng) < recipe.networkLoss {
                    segment.networkLost = true
                }
                dataIndex += 1
                segments.append(segment)
                offset += size
            }
            // Network reordering within the write.
            if recipe.reorder > 0 {
                var index = 0
                while index + 1 < segments.count {
                    if Int.random(in: 0..<100, using: &rng) < recipe.reorder {
                        segments.swapAt(index, index + 1)
                        index += 2
                    } else {
                        index += 1
                    }
                }
            }
            var retransmit: [Segment] = []
            func emit(_ segment: Segment, bytes: [UInt8]) {
                packets.append(Packet(side: side, offset: segment.offset, bytes: bytes, flags: PcapBuilder.ack | PcapBuilder.psh, ack: sent[peer]!, isData: true))
                for (index, byte) in bytes.enumerated() where firstCopy[side]![segment.offset + index] == nil {
                    firstCopy[side]![segment.offset + index] = byte
                }
            }
            var delivered = Set<Int>()
            func deliver(_ segment: Segment) {
                for position in segment.offset..<(segment.offset + segment.bytes.count) { delivered.insert(position) }
                while delivered.contains(received[side]!) { received[side]! += 1 }
            }
            for segment in segments {
                if segment.networkLost {
                    retransmit.append(segment)
                    continue
                }
                if !segment.captureLost {
                    emit(segment, bytes: segment.bytes)
                    if recipe.snapLength < 65535 {
                        let link = switch recipe.link {
                        case .ethernet: 14 + recipe.vlanTags.count * 4
                        case .null: 4
                        case .raw: 0
                        case .linuxSLL: 16
                        case .linuxSLL2: 20
                        }
                        let headers = link + (recipe.ipv6 ? 40 : 20) + 20
                        let kept = max(0, recipe.snapLength - headers)
                        for index in kept..<max(kept, segment.bytes.count) { cutTail[side]!.insert(segment.offset + index) }
                    }
                }
                deliver(segment)
                if Int.random(in: 0..<100, using: &rng) < recipe.pureACKs {
                    packets.append(Packet(side: peer, offset: sent[peer]!, bytes: [], flags: PcapBuilder.ack, ack: received[side]!, isData: false))
                }
                if Int.random(in: 0..<100, using: &rng) < recipe.duplicates, !segment.captureLost {
                    emit(segment, bytes: segment.bytes)
                }
                if Int.random(in: 0..<100, using: &rng) < recipe.conflicts, !segment.captureLost {
                    // A later copy of the same range with other bytes (capture noise): the first wins.
                    emit(segment, bytes: segment.bytes.map { $0 ^ 0x20 })
                }
            }
            for segment in retransmit {
                emit(segment, bytes: segment.bytes)
                deliver(segment)
            }
            sent[side]! += write.bytes.count
        }
        // The ending.
        var finOffset: [Side: Int] = [:]
        switch recipe.ending {
        case .fin(let firstSide):
            let second: Side = firstSide == .client ? .server : .client
            for side in [firstSide, second] {
                let peer: Side = side == .client ? .server : .client
                packets.append(Packet(side: side, offset: sent[side]!, bytes: [], flags: PcapBuilder.fin | PcapBuilder.ack, ack: sent[peer]! + (finOffset[peer] != nil ? 1 : 0), isData: false))
                finOffset[side] = sent[side]!
            }
        case .rst(let side):
            let peer: Side = side == .client ? .server : .client
            packets.append(Packet(side: side, offset: sent[side]!, bytes: [], flags: PcapBuilder.rst | PcapBuilder.ack, ack: sent[peer]!, isData: false))
        case .none:
            break
        }
        // The capture may begin late.
        let captured = Array(packets.dropFirst(recipe.skipFirst))
        if recipe.skipFirst > 0 {
            // Bytes of packets not captured are simply not there; what the reader starts from is
            // the first data packet captured in each direction.
            firstCopy = [.client: [:], .server: [:]]
            for packet in captured where packet.isData {
                for (index, byte) in packet.bytes.enumerated() where firstCopy[packet.side]![packet.offset + index] == nil {
                    firstCopy[packet.side]![packet.offset + index] = byte
                }
            }
        }
        for packet in captured {
            let from = packet.side == .client ? client : server, to = packet.side == .client ? server : client
            let peer: Side = packet.side == .client ? .server : .client
            let seq = isn[packet.side]! &+ UInt32(truncatingIfNeeded: packet.offset + first)
            let ack = packet.ack < 0 ? 0 : isn[peer]! &+ UInt32(truncatingIfNeeded: packet.ack + first)
            pcap.segment(from: from, to: to, seq: packet.flags & PcapBuilder.syn != 0 ? isn[packet.side]! : seq,
                         ack: ack, flags: packet.flags, payload: packet.bytes, advance: 200)
        }
        // What each direction must give back: from the first captured byte, each position's first
        // captured copy; positions no copy reached (or cut by the snap length) are gaps.
        var expected: [Side: [Piece]] = [:]
        for side in [Side.client, .server] {
            let total = sent[side]!
            var start = 0
            if !captured.contains(where: { $0.side == side && $0.flags & PcapBuilder.syn != 0 }) {
                // Without its SYN, a direction's stream begins at the first data packet captured.
                guard let firstData = captured.first(where: { $0.side == side && $0.isData }) else {
                    expected[side] = []
                    continue
                }
                start = firstData.offset
            }
            var pieces: [Piece] = []
            var position = start
            while position < total {
                if let byte = firstCopy[side]![position], !cutTail[side]!.contains(position) {
                    if case .bytes(let b)? = pieces.last { pieces[pieces.count - 1] = .bytes(b + [byte]) } else { pieces.append(.bytes([byte])) }
                } else {
                    if case .gap(let n)? = pieces.last { pieces[pieces.count - 1] = .gap(n + 1) } else { pieces.append(.gap(1)) }
                }
                position += 1
            }
            expected[side] = pieces
        }
        return AdversarialCapture(pcap: pcap, expected: expected, dialogue: dialogue)
    }
}

/// Keeps, per direction of a session, the pieces the reader delivered, and what the properties
/// need: lines with their secrets, message data, TLS.
final class StreamObserver: SessionObserver {
    var sessions: [SessionInfo] = []
    var pieces: [Int: [Side: [AdversarialCapture.Piece]]] = [:]
    var tlsAt: [Int: [Side: Int]] = [:]
    var encrypted: [Int: [Side: Int]] = [:]
    /// What a redacting writer shows of each client line.
    var visibleLines: [[UInt8]] = []
    var messageData: [Int: [UInt8]] = [:]
    var messageCut: Set<Int> = []
    var ends: [(message: Int, complete: Bool)] = []
    var current = 0

    func add(_ side: Side, _ piece: AdversarialCapture.Piece) {
        var list = pieces[current, default: [:]][side, default: []]
        switch (list.last, piece) {
        case (.bytes(let a)?, .bytes(let b)): list[list.count - 1] = .bytes(a + b)
        case (.gap(let a)?, .gap(let b)): list[list.count - 1] = .gap(a + b)
        default: list.append(piece)
        }
        pieces[current, default: [:]][side] = list
    }

    func length(_ side: Side) -> Int {
        (pieces[current]?[side] ?? []).reduce(0) { total, piece in
            switch piece {
            case .bytes(let b): total + b.count
            case .gap(let n): total + n
            }
        }
    }

    func sessionStarted(_ info: SessionInfo) { sessions.append(info); current = info.id }
    func select(session id: Int) { current = id }
    func sessionEnded(_ info: SessionInfo, summary: SessionSummary, reason: SessionEndReason, time: Timestamp) {}
    func command(_ raw: UnsafeRawBufferPointer, verb: SMTPVerb, flags: LineFlags, secret: Range<Int>?, time: Timestamp) {
        add(.client, .bytes(Array(raw)))
        visibleLines.append(secret.map { Secrets.redact(raw, secret: $0) } ?? Array(raw))
    }
    func reply(_ raw: UnsafeRawBufferPointer, lineCount: Int, code: Int?, context: ReplyContext, flags: LineFlags, time: Timestamp) {
        add(.server, .bytes(Array(raw)))
    }
    func authResponse(_ raw: UnsafeRawBufferPointer, secret: Range<Int>?, flags: LineFlags, time: Timestamp) {
        add(.client, .bytes(Array(raw)))
        visibleLines.append(secret.map { Secrets.redact(raw, secret: $0) } ?? Array(raw))
    }
    func messageData(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, atLineStart: Bool, time: Timestamp) {
        add(.client, .bytes(Array(raw)))
        if !messageCut.contains(message) {
            if transfer == .data {
                messageData[message, default: []] += DotStuffing.unstuff(Array(raw), atLineStart: atLineStart)
            } else {
                messageData[message, default: []] += Array(raw)
            }
        }
    }
    func messageEnd(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, size: Int, complete: Bool, time: Timestamp) {
        if !raw.isEmpty { add(.client, .bytes(Array(raw))) }
        ends.append((message, complete))
    }
    func fragment(_ raw: UnsafeRawBufferPointer, side: Side, secret: Bool, time: Timestamp) {
        add(side, .bytes(Array(raw)))
        if side == .client { visibleLines.append(Array(raw)) }
    }
    func gap(side: Side, bytes: Int, time: Timestamp) {
        add(side, .gap(bytes))
        // Like the .eml writer: what follows a hole in a message is not joined to it.
        if side == .client, let open = messageData.keys.max(), !ends.contains(where: { $0.message == open }) { messageCut.insert(open) }
    }
    func tlsStarted(_ start: TLSStart, time: Timestamp) {
        if start.state == .encrypted {
            tlsAt[current] = [.client: length(.client), .server: length(.server)]
        }
    }
    func encrypted(side: Side, bytes: Int, time: Timestamp) { encrypted[current, default: [:]][side, default: 0] += bytes }
}

/// A small deterministic generator (SplitMix64): seeded cases are reproducible.
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
