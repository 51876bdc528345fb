import Foundation
import SMTPCapture
import SMTPCore
import SMTPFiles
import SMTPTranscript
import Testing

/// Inputs found in review that once gave wrong output, leaked secrets or crashed.
@Suite struct RegressionTests {
    func extract(_ bytes: [UInt8], name: String = "r.pcap", options: ExtractionOptions = ExtractionOptions()) throws -> (RecordingObserver, FileReport) {
        let url = Fixtures.temporaryFile(name)
        defer { try? FileManager.default.removeItem(at: url) }
        try Data(bytes).write(to: url)
        let (observer, reports) = Fixtures.extract([url.path], options: options)
        return (observer, reports[0])
    }

    /// Two sessions whose messages interleave in time each get their whole message.
    @Test func overlappingSessionsKeepTheirOwnMessageFiles() throws {
        var a = Conversation(client: .v4(192, 0, 2, 1, port: 40000))
        a.handshake()
        a.server("220 a\r\n"); a.client("DATA\r\n"); a.server("354 go\r\n")
        var b = Conversation(pcap: a.pcap, client: .v4(192, 0, 2, 2, port: 40001))
        b.handshake()
        b.server("220 b\r\n"); b.client("DATA\r\n"); b.server("354 go\r\n")
        a.pcap = b.pcap
        a.client("Subject: A\r\n\r\nline A1\r\n")
        b.pcap = a.pcap
        b.client("Subject: B\r\n\r\nline B1\r\n")
        a.pcap = b.pcap
        a.client("line A2\r\n.\r\n")
        b.pcap = a.pcap
        b.client("line B2\r\n.\r\n")
        let capture = Fixtures.temporaryFile("overlap.pcap")
        let folder = Fixtures.temporaryFile("overlap")
        defer { try? FileManager.default.removeItem(at: capture); try? FileManager.default.removeItem(at: folder) }
        try b.pcap.write(to: capture)
        let output = try OutputFolder(path: folder.path, replaceExisting: false)
        let writer = MessageFileWriter(folder: output)
        _ = SMTPExtractor(observer: writer).read(file: capture.path)
        try output.commit()
        #expect(try String(contentsOf: folder.appendingPathComponent("session-0001-message-01.eml"), encoding: .utf8) == "Subject: A\r\n\r\nline A1\r\nline A2\r\n")
        #expect(try String(contentsOf: folder.appendingPathComponent("session-0002-message-01.eml"), encoding: .utf8) == "Subject: B\r\n\r\nline B1\r\nline B2\r\n")
    }

    /// A capture that begins inside an AUTH exchange: the responses after the 334 are secrets.
    @Test func captureStartingMidAuthKeepsSecretsHidden() throws {
        var c = Conversation()
        c.server("334 VXNlcm5hbWU6\r\n")
        c.client("YWxpY2U=\r\n")
        c.server("334 UGFzc3dvcmQ6\r\n")
        c.client("c2VjcmV0\r\n")
        c.server("235 ok\r\n")
        c.client("QUIT\r\n")
        c.server("221 bye\r\n")
        let url = Fixtures.temporaryFile("midauth.pcap")
        defer { try? FileManager.default.removeItem(at: url) }
        try c.pcap.write(to: url)
        let json = try Fixtures.render([url.path]) { JSONTranscriptWriter(output: $0) }
        let text = try Fixtures.render([url.path]) { TextTranscriptRenderer(output: $0) }
        for secret in ["YWxpY2U=", "c2VjcmV0", Data("YWxpY2U=".utf8).base64EncodedString()] {
            #expect(!json.contains(secret))
            #expect(!text.contains(secret))
        }
        #expect(json.components(separatedBy: "\"redacted\":true").count == 3)
    }

    /// An AUTH line cut by a gap: what follows the gap is still a secret, and the replies after
    /// the gap pair with the right commands.
    @Test func gapInsideAuthKeepsSecretsAndPairing() throws {
        var c = Conversation()
        c.handshake()
        c.server("220 mx\r\n")
        let line = Array("AUTH PLAIN AGFsaWNlAHNlY3JldHBhc3N3b3Jk\r\n".utf8)
        c.client(Array(line[0..<20]))
        c.clientSeq &+= 8  // 8 bytes never captured
        c.client(Array(line[28...]))
        c.server("235 ok\r\n")
        c.client("QUIT\r\n")
        c.server("221 bye\r\n")
        c.close()
        let (observer, _) = try extract(c.pcap.bytes)
        let visible = observer.events.compactMap { event -> String? in
            if case .fragment(_, let raw, _, false) = event { return String(decoding: raw, as: UTF8.self) }
            return nil
        }
        #expect(visible.isEmpty, "no fragment not marked secret may carry the rest of the credentials: \(visible)")
        #expect(observer.replies(session: 1).map { "\($0.code ?? 0) \($0.context)" } == ["220 greeting", "235 AUTH", "221 QUIT"])
        let text = try Fixtures.render([{ let u = Fixtures.temporaryFile("g.pcap"); try? c.pcap.write(to: u); return u.path }()]) { TextTranscriptRenderer(output: $0) }
        #expect(!text.contains("c3dvcmQ") && !text.contains("AGFsaWNl"))
    }

    /// A lost segment the peer acknowledged: its gap and the bytes after it reach the dialogue
    /// before the acknowledging side's own data.
    @Test func ackedGapIsDeliveredBeforeThePeersNextBytes() throws {
        var c = Conversation()
        c.handshake()
        c.server("220 mx\r\n")
        c.client("NOOP\r\n")
        c.clientSeq &+= 6  // "NOOP\r\n" lost
        c.client("RSET\r\n")
        c.server("250 one\r\n250 two\r\n250 three\r\n")
        c.client("QUIT\r\n")
        c.server("221 bye\r\n")
        c.close()
        let (observer, _) = try extract(c.pcap.bytes)
        #expect(observer.commands(session: 1) == ["NOOP", "RSET", "QUIT"])
        #expect(observer.gaps(session: 1).map(\.1) == [6])
        #expect(observer.replies(session: 1).last.map { "\($0.code ?? 0) \($0.context)" } == "221 QUIT")
    }

    @Test func thousandsOfReversedSegmentsReassemble() throws {
        let text = Array((0..<3000).map { _ in "x" }.joined().utf8) + Array("\r\n".utf8)
        var c = Conversation()
        c.handshake()
        c.server("220 mx\r\n")
        let pieces = text.map { [$0] }
        c.clientPieces(pieces, order: Array((0..<pieces.count).reversed()))
        c.server("500 what\r\n")
        c.close()
        let (observer, report) = try extract(c.pcap.bytes)
        #expect(report.sessions == 1)
        #expect(observer.stream(session: 1, side: .client) == text)
    }

    @Test func pcapngWithTwoLinkTypesIsReadByTheBlockReader() throws {
        var ethernet = Conversation(pcap: PcapBuilder(link: .ethernet))
        ethernet.handshake(); ethernet.server("220 over ethernet\r\n"); ethernet.client("QUIT\r\n"); ethernet.close()
        var cooked = Conversation(pcap: PcapBuilder(link: .linuxSLL2), client: .v4(198, 51, 100, 1, port: 41000))
        cooked.handshake(); cooked.server("220 over sll2\r\n"); cooked.client("QUIT\r\n"); cooked.close()
        let (observer, report) = try extract(PcapBuilder.pcapng([ethernet.pcap, cooked.pcap]), name: "two.pcapng")
        #expect(report.error == nil)
        #expect(Set(observer.sessions.map { observer.replyLines(session: $0.id).first ?? "" }) == ["220 over ethernet", "220 over sll2"])
        let (filtered, _) = try extract(PcapBuilder.pcapng([ethernet.pcap, cooked.pcap]), name: "two.pcapng", options: ExtractionOptions(filter: "host 198.51.100.1"))
        #expect(filtered.sessions.count == 1)
    }

    /// Interfaces that count time in milliseconds or nanoseconds (`if_tsresol` 3 and 9, powers
    /// of ten) give the same times as the default microseconds.
    @Test(arguments: [UInt8(3), 6, 9])
    func pcapngTimestampResolution(exponent: UInt8) throws {
        var ethernet = Conversation(pcap: PcapBuilder(link: .ethernet))
        ethernet.handshake(); ethernet.server("220 over ethernet\r\n"); ethernet.client("QUIT\r\n"); ethernet.close()
        var cooked = Conversation(pcap: PcapBuilder(link: .linuxSLL2), client: .v4(198, 51, 100, 1, port: 41000))
        cooked.handshake(); cooked.server("220 over sll2\r\n"); cooked.client("QUIT\r\n"); cooked.close()
        let (observer, report) = try extract(PcapBuilder.pcapng([ethernet.pcap, cooked.pcap], decimalResolution: exponent), name: "resolution.pcapng")
        #expect(report.error == nil)
        let firstPackets = [ethernet.pcap.frames[0].micros, cooked.pcap.frames[0].micros].map {
            Timestamp(seconds: Int64($0 / 1_000_000), nanoseconds: Int64($0 % 1_000_000) * 1000)
        }
        #expect(observer.sessions.count == 2)
        #expect(Set(observer.sessions.map(\.start)) == Set(firstPackets))
    }

    @Test func truncatedPcapngBlockIsNamed() throws {
        var ethernet = Conversation(pcap: PcapBuilder(link: .ethernet))
        ethernet.handshake(); ethernet.server("220 a\r\n")
        var cooked = Conversation(pcap: PcapBuilder(link: .linuxSLL2), client: .v4(198, 51, 100, 1, port: 41000))
        cooked.handshake()
        let (_, report) = try extract(PcapBuilder.pcapng([ethernet.pcap, cooked.pcap], simpleBlockLength: 12), name: "short.pcapng")
        #expect(report.error?.kind == .damaged)
        #expect(report.error?.description.contains("simple packet block too short") == true)
    }

    @Test func oneWildTimestampDoesNotEndOpenSessions() throws {
        var c = Conversation()
        c.handshake()
        c.server("220 mx\r\n")
        // A stray packet stamped a year ahead, then the session goes on at normal times.
        c.pcap.segment(from: .v4(203, 0, 113, 9, port: 5000), to: .v4(203, 0, 113, 10, port: 6000), seq: 1, flags: PcapBuilder.syn, advance: 31_536_000_000_000)
        c.pcap.segment(from: c.client, to: c.server, seq: c.clientSeq, ack: c.serverSeq, payload: Array("QUIT\r\n".utf8), advance: -31_536_000_000_000 + 1000)
        c.clientSeq &+= 6
        c.server("221 bye\r\n")
        c.close()
        let (observer, _) = try extract(c.pcap.bytes)
        #expect(observer.sessions.count == 1)
        #expect(observer.ended.first?.reason == .closed(by: .client))
    }

    @Test func absurdTimestampsAreClampedNotFatal() {
        #expect(Timestamp(seconds: Int64.max, nanoseconds: 0).seconds == Timestamp.secondsLimit)
        #expect(Timestamp(seconds: Int64.min, nanoseconds: 0).seconds == -Timestamp.secondsLimit)
    }
}
