import Foundation
import SMTPCapture
import SMTPCore
import Testing

/// TCP reassembly and link-layer decoding, on synthetic captures written packet by packet.
@Suite struct ReassemblyTests {
    static let command = Array("MAIL FROM:<alice@example.com> SIZE=1234\r\n".utf8)

    /// Writes the conversation to a file and extracts it.
    func run(_ conversation: Conversation, options: ExtractionOptions = ExtractionOptions()) throws -> (RecordingObserver, FileReport) {
        let url = Fixtures.temporaryFile("reassembly.pcap")
        defer { try? FileManager.default.removeItem(at: url) }
        try conversation.pcap.write(to: url)
        let (observer, reports) = Fixtures.extract([url.path], options: options)
        return (observer, reports[0])
    }

    /// A session up to the point where the client sends `pieces` (split as given, sent in `order`).
    func session(pieces: [[UInt8]], order: [Int], clientISN: UInt32 = 1000, pcap: PcapBuilder = PcapBuilder(),
                 client: PcapBuilder.Endpoint = .v4(192, 0, 2, 1, port: 40000), server: PcapBuilder.Endpoint = .v4(192, 0, 2, 25, port: 25)) -> Conversation {
        var c = Conversation(pcap: pcap, client: client, server: server, clientISN: clientISN)
        c.handshake()
        c.server("220 mx.example.com ESMTP\r\n")
        c.client("EHLO client.example.com\r\n")
        c.server("250-mx.example.com\r\n250 PIPELINING\r\n")
        c.clientPieces(pieces, order: order)
        c.server("250 2.1.0 Ok\r\n")
        c.client("QUIT\r\n")
        c.server("221 Bye\r\n")
        c.close()
        return c
    }

    static func split(_ bytes: [UInt8], at cuts: [Int]) -> [[UInt8]] {
        var pieces: [[UInt8]] = []
        var start = 0
        for cut in cuts + [bytes.count] {
            pieces.append(Array(bytes[start..<cut]))
            start = cut
        }
        return pieces
    }

    static let expectedClient = "EHLO client.example.com\r\nMAIL FROM:<alice@example.com> SIZE=1234\r\nQUIT\r\n"

    @Test(arguments: [
        [0, 1, 2, 3],        // in order
        [3, 2, 1, 0],        // reversed
        [1, 0, 3, 2],        // swapped pairs
        [0, 0, 1, 1, 2, 3],  // duplicated (retransmitted)
        [2, 0, 2, 1, 3, 1],  // out of order and retransmitted
    ])
    func reorderedAndRetransmittedSegments(order: [Int]) throws {
        let pieces = Self.split(Self.command, at: [5, 11, 30])
        let (observer, report) = try run(session(pieces: pieces, order: order))
        #expect(report.sessions == 1)
        #expect(String(decoding: observer.stream(session: 1, side: .client), as: UTF8.self) == Self.expectedClient)
        #expect(observer.commands(session: 1) == ["EHLO client.example.com", "MAIL FROM:<alice@example.com> SIZE=1234", "QUIT"])
        #expect(observer.gaps(session: 1).isEmpty)
        #expect(observer.ended.first?.reason == .closed(by: .client))
    }

    @Test func overlappingSegmentsKeepTheFirstBytes() throws {
        var c = Conversation()
        c.handshake()
        c.server("220 mx ESMTP\r\n")
        let base = c.clientSeq
        // Segments that overlap at different boundaries, the later ones carrying other bytes for
        // the overlap: the receiver keeps what arrived first.
        let text = Array("NOOP first\r\nNOOP second\r\n".utf8)
        c.pcap.segment(from: c.client, to: c.server, seq: base, ack: c.serverSeq, payload: Array(text[0..<8]))
        c.pcap.segment(from: c.client, to: c.server, seq: base + 4, ack: c.serverSeq, payload: Array("XXXX".utf8) + Array(text[8..<16]))
        c.pcap.segment(from: c.client, to: c.server, seq: base + 12, ack: c.serverSeq, payload: Array(text[12..<text.count]))
        c.clientSeq = base + UInt32(text.count)
        c.server("250 ok\r\n250 ok\r\n")
        c.close()
        let (observer, _) = try run(c)
        #expect(observer.commands(session: 1) == ["NOOP first", "NOOP second"])
    }

    /// The segment that fills a hole overlaps bytes that arrived before it, out of order, and
    /// carries other bytes for the overlap: the bytes that arrived first win.
    @Test func anInOrderSegmentDoesNotOverwriteBytesThatArrivedFirst() throws {
        var c = Conversation()
        c.handshake()
        c.server("220 mx ESMTP\r\n")
        let start = c.clientSeq
        // "NOOP\r\nHELO c\r\nQUIT\r\n": bytes 8..<20 first, then 0..<12 with "XXXX" for 8..<12.
        c.pcap.segment(from: c.client, to: c.server, seq: start &+ 8, ack: c.serverSeq, payload: Array("LO c\r\nQUIT\r\n".utf8))
        c.pcap.segment(from: c.client, to: c.server, seq: start, ack: c.serverSeq, payload: Array("NOOP\r\nHEXXXX".utf8))
        c.clientSeq = start &+ 20
        c.server("250 ok\r\n250 ok\r\n221 bye\r\n")
        c.close()
        let (observer, _) = try run(c)
        #expect(String(decoding: observer.stream(session: 1, side: .client), as: UTF8.self) == "NOOP\r\nHELO c\r\nQUIT\r\n")
        #expect(observer.gaps(session: 1).isEmpty)
    }

    /// Out-of-order data waits behind a hole up to 4 MiB or 65,536 segments; one more and the
    /// hole is declared lost (a gap), so the segment that fills it, coming later, is too late.
    /// The data is a BDAT chunk: `count` segments of `size` bytes after a hole of 1,000.
    @Test(arguments: [
        (size: 60_000, count: 69, gap: false),  // 4,140,000 bytes waiting
        (size: 60_000, count: 70, gap: true),   // 4,200,000 > 4 MiB (4,194,304)
        (size: 1, count: 65_536, gap: false),
        (size: 1, count: 65_537, gap: true),
    ])
    func outOfOrderDataWaitsUpToItsLimits(size: Int, count: Int, gap: Bool) throws {
        var c = Conversation()
        c.handshake()
        c.server("220 mx ESMTP\r\n")
        let hole = [UInt8](repeating: 0x61, count: 1000)
        c.client("BDAT \(hole.count + size * count) LAST\r\n")
        let start = c.clientSeq
        let piece = [UInt8](repeating: 0x62, count: size)
        for index in 0..<count {
            c.pcap.segment(from: c.client, to: c.server, seq: start &+ UInt32(hole.count + index * size), ack: c.serverSeq, payload: piece, advance: 1)
        }
        c.pcap.segment(from: c.client, to: c.server, seq: start, ack: c.serverSeq, payload: hole)
        c.clientSeq = start &+ UInt32(hole.count + size * count)
        c.server("250 ok\r\n")
        c.close()
        let (observer, _) = try run(c)
        #expect(observer.gaps(session: 1).map { "\($0.0) \($0.1)" } == (gap ? ["client 1000"] : []))
    }

    /// A segment the snap length cut, at the very end of the capture (no reply, no FIN, no ACK
    /// after it): its missing bytes are still a gap.
    @Test func aSegmentCutAtTheEndOfTheCaptureLeavesAGap() throws {
        var pcap = PcapBuilder()
        pcap.snapLength = 14 + 20 + 20 + 10  // Ethernet + IPv4 + TCP + 10 payload bytes
        var c = Conversation(pcap: pcap)
        c.handshake()
        c.server("220 mx\r\n")
        c.client("MAIL FROM:<a@b>\r\n")  // 17 bytes: 7 cut
        let (observer, _) = try run(c)
        #expect(observer.gaps(session: 1).map { "\($0.0) \($0.1)" } == ["client 7"])
    }

    /// The server's reply acknowledges the client's FIN, which the capture missed: a sequence
    /// number, not a byte of data, so no gap.
    @Test func anAcknowledgedFINTheCaptureMissedIsNoGap() throws {
        var c = Conversation()
        c.handshake()
        c.server("220 mx ESMTP\r\n")
        c.client("QUIT\r\n")
        c.clientSeq &+= 1  // the client closes at once; its FIN is not in the capture
        c.server("221 bye\r\n")
        let (observer, _) = try run(c)
        #expect(observer.gaps(session: 1).isEmpty)
        #expect(observer.replyLines(session: 1) == ["220 mx ESMTP", "221 bye"])
    }

    @Test func sequenceNumbersWrapAround() throws {
        let pieces = Self.split(Self.command, at: [10, 20])
        // The client's ISN puts the MAIL command across 2^32.
        let isn = UInt32.max - UInt32("EHLO client.example.com\r\n".utf8.count) - 12
        let (observer, _) = try run(session(pieces: pieces, order: [2, 0, 1], clientISN: isn))
        #expect(String(decoding: observer.stream(session: 1, side: .client), as: UTF8.self) == Self.expectedClient)
    }

    @Test func lostSegmentIsAGapAndParsingResumesAtTheNextLine() throws {
        var c = Conversation()
        c.handshake()
        c.server("220 mx ESMTP\r\n")
        c.client("EHLO a\r\n")
        c.server("250 ok\r\n")
        let lost = Array("MAIL FROM:<lost@example.com>\r\nRCPT TO:<also".utf8)
        let after = Array("-lost@example.com>\r\nNOOP\r\n".utf8)
        let lostSeq = c.clientSeq
        c.clientSeq &+= UInt32(lost.count)
        c.client(after)
        // The server acknowledges everything: the capture missed the bytes, the server did not.
        c.server("250 ok\r\n250 ok\r\n250 ok\r\n")
        c.client("QUIT\r\n")
        c.server("221 bye\r\n")
        c.close()
        _ = lostSeq
        let (observer, _) = try run(c)
        #expect(observer.gaps(session: 1).map(\.1) == [lost.count])
        #expect(observer.gaps(session: 1).first?.0 == .client)
        // The rest of the cut line is not parsed as a command: after a client gap, before a known
        // command, it may be part of a credential (the gap may have swallowed an AUTH), so it is
        // reported as a secret fragment.
        #expect(observer.commands(session: 1) == ["EHLO a", "NOOP", "QUIT"])
        #expect(observer.events.contains(.fragment(session: 1, raw: Array("-lost@example.com>\r\n".utf8), side: .client, secret: true)))
        #expect(!observer.events.contains { if case .command(1, let raw, _, _) = $0 { raw.starts(with: Array("-lost".utf8)) } else { false } })
    }

    @Test func snapLengthCutIsAGapOfTheMissingSize() throws {
        var pcap = PcapBuilder()
        pcap.snapLength = 14 + 20 + 20 + 10  // Ethernet + IPv4 + TCP + 10 payload bytes
        var c = Conversation(pcap: pcap)
        c.handshake()
        c.server("220 mx ESMTP\r\n")         // 14 bytes: 4 cut
        c.client("NOOP\r\n")                 // 6 bytes: whole
        c.server("250 ok\r\n")
        c.close()
        let (observer, report) = try run(c)
        #expect(report.sessions == 1)
        #expect(observer.gaps(session: 1).map(\.1) == [4])
        #expect(observer.commands(session: 1) == ["NOOP"])
    }

    @Test func captureThatStartsMidSession() throws {
        var c = Conversation()
        // No handshake: the capture begins after the greeting.
        c.client("MAIL FROM:<a@example.com>\r\n")
        c.server("250 ok\r\n")
        c.client("QUIT\r\n")
        c.server("221 bye\r\n")
        let (observer, _) = try run(c)
        #expect(observer.sessions.first?.handshakeSeen == false)
        #expect(observer.sessions.first?.client == "192.0.2.1:40000")
        #expect(observer.replies(session: 1).map(\.context) == ["MAIL", "QUIT"])
        #expect(observer.ended.first?.reason == .captureEnded)
    }

    @Test func resetEndsTheSessionAndNamesTheSide() throws {
        var c = Conversation()
        c.handshake()
        c.server("220 mx ESMTP\r\n")
        c.client("EHLO a\r\n")
        c.pcap.segment(from: c.client, to: c.server, seq: c.clientSeq, ack: c.serverSeq, flags: PcapBuilder.rst | PcapBuilder.ack)
        let (observer, _) = try run(c)
        #expect(observer.ended.first?.reason == .reset(by: .client))
    }

    /// A reset connection still takes packets for twice the handshake's round trip, at least
    /// 10 ms and at most 2 s: the server's reply stored `delay` microseconds after the client's
    /// reset belongs to the session within that; after it, it starts a session of its own.
    @Test(arguments: [
        (roundTrip: Int64(100), delay: Int64(5_000), sameSession: true),  // 0.2 ms, raised to 10 ms
        (roundTrip: 100, delay: 15_000, sameSession: false),
        (roundTrip: 20_000, delay: 30_000, sameSession: true),             // 40 ms
        (roundTrip: 20_000, delay: 50_000, sameSession: false),
        (roundTrip: 3_000_000, delay: 1_500_000, sameSession: true),       // 6 s, cut to 2 s
        (roundTrip: 3_000_000, delay: 2_500_000, sameSession: false),
    ])
    func aResetLingersTwiceTheRoundTripWithinBounds(roundTrip: Int64, delay: Int64, sameSession: Bool) throws {
        var c = Conversation()
        c.pcap.segment(from: c.client, to: c.server, seq: c.clientSeq, flags: PcapBuilder.syn)
        c.pcap.segment(from: c.server, to: c.client, seq: c.serverSeq, ack: c.clientSeq &+ 1, flags: PcapBuilder.syn | PcapBuilder.ack, advance: roundTrip)
        c.clientSeq &+= 1
        c.serverSeq &+= 1
        c.pcap.segment(from: c.client, to: c.server, seq: c.clientSeq, ack: c.serverSeq, flags: PcapBuilder.ack, advance: 1)
        c.server("220 mx ESMTP\r\n")
        c.client("QUIT\r\n")
        c.pcap.segment(from: c.client, to: c.server, seq: c.clientSeq, ack: c.serverSeq, flags: PcapBuilder.rst | PcapBuilder.ack)
        c.pcap.segment(from: c.server, to: c.client, seq: c.serverSeq, ack: c.clientSeq, payload: Array("221 bye\r\n".utf8), advance: delay)
        let (observer, report) = try run(c)
        #expect(report.sessions == (sameSession ? 1 : 2))
        #expect(observer.replyLines(session: 1) == (sameSession ? ["220 mx ESMTP", "221 bye"] : ["220 mx ESMTP"]))
        #expect(observer.ended.first?.reason == .reset(by: .client))
    }

    @Test func sameAddressesAndPortsReusedMakeTwoSessions() throws {
        var first = Conversation(clientISN: 1000)
        first.handshake()
        first.server("220 one\r\n")
        first.client("QUIT\r\n")
        first.server("221 bye\r\n")
        first.close()
        var second = Conversation(pcap: first.pcap, clientISN: 900_000)
        second.handshake()
        second.server("220 two\r\n")
        second.client("QUIT\r\n")
        second.server("221 bye\r\n")
        second.close()
        let (observer, _) = try run(second)
        #expect(observer.sessions.count == 2)
        #expect(observer.replyLines(session: 1).first == "220 one")
        #expect(observer.replyLines(session: 2).first == "220 two")
    }

    @Test(arguments: [PcapBuilder.Link.ethernet, .null, .raw, .linuxSLL, .linuxSLL2])
    func linkTypesOverIPv4AndIPv6(link: PcapBuilder.Link) throws {
        for ipv6 in [false, true] {
            let client: PcapBuilder.Endpoint = ipv6 ? .v6(last: 1, port: 40000) : .v4(192, 0, 2, 1, port: 40000)
            let server: PcapBuilder.Endpoint = ipv6 ? .v6(last: 25, port: 25) : .v4(192, 0, 2, 25, port: 25)
            var pcap = PcapBuilder(link: link)
            pcap.ipv6ExtensionHeader = ipv6
            let (observer, report) = try run(session(pieces: [Self.command], order: [0], pcap: pcap, client: client, server: server))
            #expect(report.sessions == 1, "\(link) ipv6=\(ipv6)")
            #expect(String(decoding: observer.stream(session: 1, side: .client), as: UTF8.self) == Self.expectedClient)
            #expect(observer.sessions.first?.server == (ipv6 ? "[2001:db8::19]:25" : "192.0.2.25:25"))
        }
    }

    @Test(arguments: [[UInt16(0x8100)], [0x88A8, 0x8100], [0x9100, 0x8100]])
    func vlanTags(tags: [UInt16]) throws {
        var pcap = PcapBuilder()
        pcap.vlanTags = tags
        let (observer, _) = try run(session(pieces: [Self.command], order: [0], pcap: pcap))
        #expect(String(decoding: observer.stream(session: 1, side: .client), as: UTF8.self) == Self.expectedClient)
    }

    @Test func ipv6AuthenticationHeaderIsSkipped() throws {
        var pcap = PcapBuilder()
        pcap.ipv6ExtensionHeader = true
        pcap.ipv6AuthenticationHeader = true
        let (observer, report) = try run(session(pieces: [Self.command], order: [0], pcap: pcap,
                                                 client: .v6(last: 1, port: 40000), server: .v6(last: 25, port: 25)))
        #expect(report.sessions == 1)
        #expect(String(decoding: observer.stream(session: 1, side: .client), as: UTF8.self) == Self.expectedClient)
    }

    /// Only the first fragment of an IP packet holds the TCP header: it is read, and a later
    /// fragment, whose bytes here happen to read as a TCP header, is skipped.
    @Test(arguments: [false, true])
    func ipFragments(ipv6: Bool) throws {
        var c = Conversation(client: ipv6 ? .v6(last: 1, port: 40000) : .v4(192, 0, 2, 1, port: 40000),
                             server: ipv6 ? .v6(last: 25, port: 25) : .v4(192, 0, 2, 25, port: 25))
        c.handshake()
        c.server("220 mx ESMTP\r\n")
        // A later fragment (at byte 1,480) that would read as "RSET" at the client's next byte.
        c.pcap.fragment = (offset: 185, more: false)
        c.pcap.segment(from: c.client, to: c.server, seq: c.clientSeq, ack: c.serverSeq, payload: Array("RSET\r\n".utf8))
        c.pcap.fragment = (offset: 0, more: true)
        c.client("NOOP\r\n")
        c.pcap.fragment = nil
        c.server("250 ok\r\n")
        c.client("QUIT\r\n")
        c.server("221 bye\r\n")
        c.close()
        let (observer, _) = try run(c)
        #expect(observer.commands(session: 1) == ["NOOP", "QUIT"])
        #expect(observer.gaps(session: 1).isEmpty)
    }

    @Test func ethernetTrailerBytesAreNotPayload() throws {
        var pcap = PcapBuilder()
        pcap.ethernetTrailer = 6
        let (observer, _) = try run(session(pieces: [Self.command], order: [0], pcap: pcap))
        #expect(String(decoding: observer.stream(session: 1, side: .client), as: UTF8.self) == Self.expectedClient)
    }

    @Test func nanosecondTimestamps() throws {
        var pcap = PcapBuilder()
        pcap.nanosecond = true
        let (observer, _) = try run(session(pieces: [Self.command], order: [0], pcap: pcap))
        // The builder's clock starts at 1,700,000,000.001 s (the first packet advances 1 ms).
        #expect(observer.sessions.first?.start == Timestamp(nanoseconds: 1_700_000_000_001_000_000))
    }

    @Test func greetingOnAnUnusualPortIsDetected() throws {
        let server = PcapBuilder.Endpoint.v4(192, 0, 2, 25, port: 8025)
        let (observer, _) = try run(session(pieces: [Self.command], order: [0], server: server))
        #expect(observer.sessions.first?.server == "192.0.2.25:8025")
    }

    @Test func otherProtocolsOnUnusualPortsAreIgnored() throws {
        var c = Conversation(server: .v4(192, 0, 2, 80, port: 80))
        c.handshake()
        c.client("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        c.server("HTTP/1.1 200 OK\r\n\r\n")
        c.close()
        let (observer, report) = try run(c)
        #expect(observer.sessions.isEmpty)
        #expect(report.tcpConnections == 1)
        #expect(report.warnings.first?.contains("no SMTP sessions found") == true)
    }

    @Test func extraPortMakesAConnectionSMTPWithoutAGreeting() throws {
        var c = Conversation(server: .v4(192, 0, 2, 25, port: 8000))
        c.client("HELO a\r\n")
        c.server("250 ok\r\n")
        let (without, _) = try run(c)
        #expect(without.sessions.isEmpty)
        let (with, _) = try run(c, options: ExtractionOptions(extraPorts: [8000]))
        #expect(with.commands(session: 1) == ["HELO a"])
    }

    @Test func idleConnectionsAreFlushed() throws {
        var c = Conversation()
        c.handshake()
        c.server("220 first\r\n")
        var other = Conversation(pcap: c.pcap, client: .v4(192, 0, 2, 2, port: 40001))
        other.pcap.segment(from: other.client, to: other.server, seq: 1, flags: PcapBuilder.syn, advance: 3_600_000_000)
        other.pcap.segment(from: other.server, to: other.client, seq: 1, ack: 2, payload: Array("220 second\r\n".utf8))
        let (observer, _) = try run(other, options: ExtractionOptions(idleTimeout: 60))
        #expect(observer.ended.first?.reason == .idle)
        #expect(observer.ended.first?.info.id == 1)
    }

    @Test func bpfFilterAppliesBeforeAnythingElse() throws {
        let (all, _) = try run(session(pieces: [Self.command], order: [0]))
        #expect(all.sessions.count == 1)
        let (none, _) = try run(session(pieces: [Self.command], order: [0]), options: ExtractionOptions(filter: "host 198.51.100.7"))
        #expect(none.sessions.isEmpty)
    }

    @Test func bytesStoredAfterAResetStillBelongToTheSession() throws {
        var c = Conversation()
        c.handshake()
        c.server("220 mx ESMTP\r\n")
        c.client("QUIT\r\n")
        // Captured on several CPUs: the reset is stored before the server's last reply.
        c.pcap.segment(from: c.client, to: c.server, seq: c.clientSeq, ack: c.serverSeq, flags: PcapBuilder.rst | PcapBuilder.ack)
        c.server("221 bye\r\n")
        let (observer, _) = try run(c)
        #expect(observer.replyLines(session: 1) == ["220 mx ESMTP", "221 bye"])
        #expect(observer.ended.first?.reason == .reset(by: .client))
    }

    @Test func ftpGreetingOnAnotherPortIsNotSMTP() throws {
        var c = Conversation(server: .v4(192, 0, 2, 21, port: 21))
        c.handshake()
        c.server("220 (vsFTPd 3.0.3)\r\n")
        c.client("USER anonymous\r\n")
        c.close()
        let (observer, _) = try run(c)
        #expect(observer.sessions.isEmpty)
    }
}
