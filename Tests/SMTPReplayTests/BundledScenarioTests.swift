import Foundation
import SMTPScenario
import SMTPTapeTesting
import Testing

/// The example scenarios in Scenarios/ played to a real client that retries like a mail queue
/// (smtplib, one connection per attempt): each fault reaches the client as the scenario says
/// (a close without reply, a reply cut off, silence, a reset, 421), and the verdicts show what
/// the client did about it.
@Suite(.enabled(if: Tools.available("python3"), "python3 is not installed"))
struct BundledScenarioTests {
    static func file(_ name: String) -> String {
        Tools.repository.appendingPathComponent("Scenarios/\(name).yaml").path
    }

    /// Tries to deliver the message up to `attempts` times, a new connection each time, and prints
    /// one line per attempt: `N: delivered {}` or `N: ExceptionName: what smtplib said`.
    /// smtplib's debug output (each reply's bytes as read) goes to standard error.
    static func retry(port: Int, attempts: Int, timeout: Double, message: String) async throws -> Tools.Result {
        let script = """
            import smtplib, sys
            port, attempts, timeout = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
            message = sys.stdin.buffer.read()
            for attempt in range(1, attempts + 1):
                try:
                    with smtplib.SMTP("127.0.0.1", port, "client.example.test", timeout=timeout) as client:
                        client.set_debuglevel(1)
                        print(f"{attempt}: delivered", client.sendmail("alice@example.com", ["bob@example.net"], message), flush=True)
                        break
                except smtplib.SMTPConnectError as error:
                    print(f"{attempt}: SMTPConnectError: {error.smtp_code} {error.smtp_error.decode()}", flush=True)
                except smtplib.SMTPResponseException as error:
                    print(f"{attempt}: {type(error).__name__}: {error.smtp_code} {error.smtp_error.decode()}", flush=True)
                except (smtplib.SMTPException, OSError) as error:
                    print(f"{attempt}: {type(error).__name__}: {error}", flush=True)
            """
        return try await Tools.runAsync(["python3", "-c", script, String(port), String(attempts), String(timeout)],
                                        input: message.replacingOccurrences(of: "\n", with: "\r\n"))
    }

    static let travelPlans = """
        Date: Tue, 04 Mar 2025 16:20:00 +0000
        From: Alice <alice@example.com>
        To: Bob <bob@example.net>
        Subject: Travel plans
        Message-ID: <20250304162000.3318@example.com>

        Hi Bob,

        the train leaves at nine.

        Alice

        """

    static let invoice = """
        Date: Tue, 04 Mar 2025 13:45:00 +0000
        From: Alice <alice@example.com>
        To: Bob <bob@example.net>
        Subject: Invoice 2025-031
        Message-ID: <20250304134500.8105@example.com>

        Hi Bob,

        please find the invoice for March below.

        Alice

        """

    static let lunch = """
        Date: Tue, 04 Mar 2025 11:00:00 +0000
        From: Alice <alice@example.com>
        To: Bob <bob@example.net>
        Subject: Lunch on Friday?
        Message-ID: <20250304110000.6021@example.com>

        Hi Bob,

        are you free for lunch on Friday?

        Alice

        """

    @Test("unresponsive-server.yaml: smtplib times out on the stalled step, sees the reset at RCPT as a reset, delivers on the third attempt")
    func unresponsive() async throws {
        nonisolated(unsafe) var client = Tools.Result(status: -1, stdout: "", stderr: "")
        let outcome = try await withReplayServer(scenarioFile: Self.file("unresponsive-server")) { server in
            client = try await Self.retry(port: server.port, attempts: 3, timeout: 1, message: Self.travelPlans)
        }
        #expect(client.stdout.split(separator: "\n") == [
            "1: SMTPServerDisconnected: Connection unexpectedly closed: timed out",
            "2: SMTPServerDisconnected: Connection unexpectedly closed: [Errno 104] Connection reset by peer",
            "3: delivered {}",
        ], "\(client.stdout)\(client.stderr)")
        #expect(outcome.passed, "\(outcome)")
        #expect(outcome.verdicts.map(\.steps.count) == [5, 3, 6])
        #expect(outcome.verdicts.allSatisfy { $0.notes.isEmpty }, "\(outcome)")
        // The stalled session kept the message it never answered.
        #expect(outcome.verdicts[0].messages.map(\.replyCode) == [nil])
        #expect(outcome.verdicts[2].messages.map(\.replyCode) == [250])
    }

    @Test("server-shutting-down.yaml: the 421 greeting and the 421 at MAIL reach smtplib as 421, and it sends nothing more")
    func shuttingDown() async throws {
        nonisolated(unsafe) var client = Tools.Result(status: -1, stdout: "", stderr: "")
        let outcome = try await withReplayServer(scenarioFile: Self.file("server-shutting-down")) { server in
            client = try await Self.retry(port: server.port, attempts: 2, timeout: 5, message: Self.travelPlans)
        }
        #expect(client.stdout.split(separator: "\n") == [
            "1: SMTPConnectError: 421 4.3.2 Service shutting down",
            "2: SMTPSenderRefused: 421 4.3.2 Service shutting down",
        ], "\(client.stdout)\(client.stderr)")
        #expect(outcome.passed, "\(outcome)")
        #expect(outcome.verdicts.map(\.steps.count) == [0, 2])  // no line after either 421
        #expect(outcome.verdicts.allSatisfy { $0.notes.isEmpty }, "\(outcome)")
    }

    @Test("disconnect-during-data.yaml: the drop reaches smtplib as a close with no reply; smtplib takes the reply cut before its CRLF as delivered, and the third session goes unused")
    func disconnect() async throws {
        nonisolated(unsafe) var client = Tools.Result(status: -1, stdout: "", stderr: "")
        let outcome = try await withReplayServer(scenarioFile: Self.file("disconnect-during-data")) { server in
            client = try await Self.retry(port: server.port, attempts: 3, timeout: 5, message: Self.invoice)
        }
        #expect(client.stdout.split(separator: "\n") == [
            "1: SMTPServerDisconnected: Connection unexpectedly closed",
            "2: delivered {}",
        ], "\(client.stdout)\(client.stderr)")
        // The bytes smtplib read: the reply without its line ending, then the end of the stream.
        #expect(client.stderr.contains("reply: b'250 2.0.0 Ok: queued as 1C2D3E4F5A'\n"), "\(client.stderr)")
        #expect(!client.stderr.contains("1C2D3E4F5A\\r\\n"), "\(client.stderr)")
        #expect(!outcome.passed)
        #expect(outcome.verdicts.map(\.passed) == [true, true])
        #expect(outcome.unused == ["disconnect during DATA (session 3)"])
        #expect(outcome.verdicts[0].messages.map(\.replyCode) == [nil])
        #expect(outcome.verdicts[1].messages.map(\.replyCode) == [250])
    }

    @Test("greylisting.yaml: smtplib sends RSET after the 451 before QUIT; the strict script fails step 4, the lenient one tolerates the RSET", arguments: [false, true])
    func greylisting(lenient: Bool) async throws {
        nonisolated(unsafe) var client = Tools.Result(status: -1, stdout: "", stderr: "")
        let outcome = try await withReplayServer(scenarioFile: Self.file("greylisting"), options: ReplayTestOptions(lenient: lenient)) { server in
            client = try await Self.retry(port: server.port, attempts: 2, timeout: 5, message: Self.lunch)
        }
        #expect(client.stdout.split(separator: "\n") == [
            "1: SMTPRecipientsRefused: {'bob@example.net': (451, b'4.7.1 <bob@example.net>: Recipient address rejected: Greylisted, try again later')}",
            "2: delivered {}",
        ], "\(client.stdout)\(client.stderr)")
        let first = try #require(outcome.verdicts.first)
        if lenient {
            #expect(outcome.passed, "\(outcome)")
            let rset = try #require(first.steps.first { $0.step == nil })
            #expect(rset.status == .unexpected && rset.tolerated && rset.actual == "rset")
            #expect(first.steps.filter { $0.step != nil }.allSatisfy { $0.status == .passed })
        } else {
            #expect(!outcome.passed)
            #expect(first.firstFailure?.step == 4)
            #expect(first.steps[3].status == .mismatched && first.steps[3].actual == "rset" && first.steps[3].attempts == ["rset", "QUIT"], "\(first.steps[3])")  // the with block quits in capitals
            #expect(outcome.verdicts[1].passed)
        }
    }
}
