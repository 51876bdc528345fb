import Foundation
import SMTPCapture
import SMTPCore
import Testing

/// Damaged and wrong inputs: a clear error naming the file (and packet), the right kind, and
/// everything read before the fault still delivered.
@Suite struct BadInputTests {
    func twoSessions() -> Conversation {
        var c = Conversation()
        c.handshake()
        c.server("220 one\r\n")
        c.client("QUIT\r\n")
        c.server("221 bye\r\n")
        c.close()
        var d = Conversation(pcap: c.pcap, client: .v4(192, 0, 2, 9, port: 41000))
        d.handshake()
        d.server("220 two\r\n")
        d.client("NOOP\r\n")
        return d
    }

    @Test func missingFile() {
        let (observer, reports) = Fixtures.extract(["/nonexistent/mail.pcap"])
        #expect(reports[0].error?.kind == .cannotOpen)
        #expect(reports[0].error?.description == "/nonexistent/mail.pcap: no such file")
        #expect(reports[0].error?.exitCode == 2)
        #expect(observer.sessions.isEmpty)
    }

    @Test func notACapture() throws {
        let url = Fixtures.temporaryFile("notes.txt")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data("EHLO this is not a capture\n".utf8).write(to: url)
        let (_, reports) = Fixtures.extract([url.path])
        #expect(reports[0].error?.kind == .notACapture)
        #expect(reports[0].error?.description.hasPrefix(url.path + ": not a pcap or pcapng capture") == true)
    }

    @Test func emptyFile() throws {
        let url = Fixtures.temporaryFile("empty.pcap")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data().write(to: url)
        let (_, reports) = Fixtures.extract([url.path])
        #expect(reports[0].error?.kind == .notACapture)
    }

    @Test func truncatedMidRecordKeepsWhatCameBefore() throws {
        let url = Fixtures.temporaryFile("truncated.pcap")
        defer { try? FileManager.default.removeItem(at: url) }
        try twoSessions().pcap.write(to: url, truncateBy: 7)
        let (observer, reports) = Fixtures.extract([url.path])
        let error = try #require(reports[0].error)
        #expect(error.kind == .damaged)
        #expect(error.exitCode == 1)
        #expect(error.description.hasPrefix(url.path + ": packet \(reports[0].packets + 1): capture truncated"))
        // The first session was complete; the second is delivered as far as it went.
        #expect(observer.ended.map(\.reason) == [.closed(by: .client), .fileDamaged])
        #expect(observer.replyLines(session: 2) == ["220 two"])
    }

    @Test func corruptRecordLength() throws {
        let url = Fixtures.temporaryFile("corrupt.pcap")
        defer { try? FileManager.default.removeItem(at: url) }
        var c = twoSessions()
        c.pcap.damageLastRecordLength()
        try c.pcap.write(to: url)
        let (observer, reports) = Fixtures.extract([url.path])
        #expect(reports[0].error?.kind == .damaged)
        #expect(reports[0].error?.packet == c.pcap.records.count)
        #expect(observer.sessions.count == 2)
    }

    @Test func corruptPacketIsSkippedAndNamed() throws {
        let url = Fixtures.temporaryFile("badip.pcap")
        defer { try? FileManager.default.removeItem(at: url) }
        var c = Conversation()
        c.handshake()
        c.server("220 mx\r\n")
        var bytes = c.pcap.bytes
        // Packet 2 (the SYN-ACK): IPv4 header length field 2 (8 bytes), which cannot be.
        let record2 = 24 + (16 + c.pcap.records[0].count - 16) + 16
        bytes[record2 + 14] = 0x42
        try Data(bytes).write(to: url)
        let (_, reports) = Fixtures.extract([url.path])
        #expect(reports[0].corruptPackets == 1)
        #expect(reports[0].firstCorruption?.packet == 2)
        #expect(reports[0].warnings.first == "\(url.path): packet 2: IPv4 header length 8 is under 20; 1 corrupt packet(s) skipped")
        #expect(reports[0].sessions == 1)
    }

    @Test func badFilterIsAnArgumentError() throws {
        let (_, reports) = Fixtures.extract([Fixtures.capture("swaks-sink-plain")], options: ExtractionOptions(filter: "port twenty-five"))
        #expect(reports[0].error?.kind == .badArguments)
        #expect(reports[0].error?.exitCode == 64)
        #expect(reports[0].error?.description.contains("bad --filter 'port twenty-five'") == true)
    }

    @Test func binaryJunkInTheDialogueIsKeptAndFlagged() throws {
        var c = Conversation()
        c.handshake()
        c.server("220 mx\r\n")
        let junk: [UInt8] = [0x00, 0xFF, 0xFE, 0x0A] + Array(repeating: 0x41, count: 3000) + [0x0D, 0x0A]
        c.client(junk)
        c.server("250OK\n")
        c.close()
        let url = Fixtures.temporaryFile("junk.pcap")
        defer { try? FileManager.default.removeItem(at: url) }
        try c.pcap.write(to: url)
        let (observer, _) = Fixtures.extract([url.path])
        #expect(observer.stream(session: 1, side: .client) == junk)
        #expect(observer.events.contains { if case .reply(1, _, 250, _, let flags) = $0 { flags.contains("no_space_after_code") && flags.contains("bare_lf") } else { false } })
    }
}
