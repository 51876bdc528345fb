import SMTPScenario
import Testing

/// The player on its own, for what the clients' tests found.
@Suite struct SessionPlayerTests {
    static let quitOnly = """
        version: 1
        name: hello and goodbye
        sessions:
        - greeting: 220 mx.example.com ESMTP
          steps:
          - client: EHLO *
            match: wildcard
            reply: 250 mx.example.com
          - client: QUIT
            reply: 221 2.0.0 Bye
        """

    @Test("a connection that fails after QUIT was answered (TLS closed without close_notify) leaves no note; one that fails before does")
    func failureAfterTheEnd() throws {
        let scenario = try Tools.scenario(Self.quitOnly)
        var finished = try SessionPlayer(session: scenario.sessions[0], scenarioName: scenario.name)
        _ = finished.start()
        _ = finished.receive(Array("EHLO client.example.test\r\n".utf8))
        let actions = finished.receive(Array("QUIT\r\n".utf8))
        #expect(actions.last == .close)
        finished.failed("the connection failed: uncleanShutdown")
        finished.clientClosed()
        let verdict = finished.verdict(session: 1, time: "", client: "127.0.0.1:1")
        #expect(verdict.passed)
        #expect(verdict.notes.isEmpty, "\(verdict.notes)")

        var cut = try SessionPlayer(session: scenario.sessions[0], scenarioName: scenario.name)
        _ = cut.start()
        _ = cut.receive(Array("EHLO client.example.test\r\n".utf8))
        cut.failed("the connection failed: Connection reset by peer")
        cut.clientClosed()
        let failed = cut.verdict(session: 1, time: "", client: "127.0.0.1:1")
        #expect(!failed.passed)
        #expect(failed.notes == ["the connection failed: Connection reset by peer"])
    }

    static func pipelining(advertised: Bool) -> String {
        """
        version: 1
        name: pipelining
        sessions:
        - greeting: 220 mx.example.com ESMTP
          steps:
          - client: EHLO *
            match: wildcard
            reply: |-
              250-mx.example.com
              250-\(advertised ? "PIPELINING" : "8BITMIME")
              250 ENHANCEDSTATUSCODES
          - client: MAIL FROM:<alice@example.com>
            reply: 250 2.1.0 Ok
          - client: RCPT TO:<bob@example.net>
            reply: 250 2.1.5 Ok
          - client: QUIT
            reply: 221 2.0.0 Bye
        """
    }

    @Test("MAIL and RCPT in one write are noted as pipelining only when the EHLO reply did not advertise PIPELINING", arguments: [true, false])
    func pipelining(advertised: Bool) throws {
        let scenario = try Tools.scenario(Self.pipelining(advertised: advertised))
        var player = try SessionPlayer(session: scenario.sessions[0], scenarioName: scenario.name)
        _ = player.start()
        _ = player.receive(Array("EHLO client.example.test\r\n".utf8))
        let replies = player.receive(Array("MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.net>\r\n".utf8))
        #expect(replies == [.send(Array("250 2.1.0 Ok\r\n".utf8)), .send(Array("250 2.1.5 Ok\r\n".utf8))])
        _ = player.receive(Array("QUIT\r\n".utf8))
        let verdict = player.verdict(session: 1, time: "", client: "127.0.0.1:1")
        #expect(verdict.passed)
        #expect(verdict.notes == (advertised ? [] : ["a command was sent before the reply to the previous one although PIPELINING was not advertised (RFC 2920)"]))
    }
}
