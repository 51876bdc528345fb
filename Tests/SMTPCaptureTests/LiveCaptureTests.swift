import Foundation
import SMTPScenario
import Testing

/// `smtptape capture` on the loopback interface, with real clients and servers: swaks against
/// Postfix's smtp-sink, an independent tcpdump beside it. Needs root (or CAP_NET_RAW), which the
/// tests have here and in CI; without root or the tools they are skipped (CI installs the tools
/// with scripts/install-prerequisites.sh).
@Suite(.serialized) struct LiveCaptureTests {
    static let isRoot = getuid() == 0
    static let haveTools = LiveProcess.available("tcpdump") && LiveProcess.available("swaks") && LiveProcess.available("smtp-sink")

    @Test("scenarios written as sessions end equal what extract makes of tcpdump's capture of the same sessions",
          .enabled(if: isRoot, "capturing needs root"),
          .enabled(if: haveTools, "tcpdump, swaks or Postfix's smtp-sink is not installed"))
    func scenariosEqualTcpdumpExtract() throws {
        let dir = try LiveProcess.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let port = try LiveProcess.freePort()
        let sink = try LiveProcess.sink(port: port)
        defer { sink.stop() }

        let tcpdumpFile = dir.appendingPathComponent("tcpdump.pcap").path
        let tcpdump = try LiveProcess(["tcpdump", "-i", "lo", "--immediate-mode", "-B", "32768", "-U", "-Z", "root", "-w", tcpdumpFile, "tcp port \(port)"])
        defer { tcpdump.stop() }
        let live = dir.appendingPathComponent("live").path
        let capture = try LiveProcess([CLITests.executable.path, "capture", "--interface", "lo", "--filter", "tcp port \(port)", "-o", live])
        defer { capture.stop() }
        try tcpdump.waitForStderr("listening on")
        try capture.waitForStderr("smtptape: capturing on lo\n")

        let server = "127.0.0.1:\(port)"
        let swaks = ["swaks", "--server", server, "--from", "alice@example.com", "--silent", "2"]
        try LiveProcess.run(swaks + ["--to", "bob@example.net"])
        try LiveProcess.run(swaks + ["--to", "bob@example.net,carol@example.org", "--pipeline", "--body", "two\n.dot-stuffed\n"])
        // smtp-sink answers AUTH with 250, which swaks takes as a failure: a session without a message.
        try LiveProcess.run(swaks + ["--to", "bob@example.net", "--auth", "PLAIN", "--auth-user", "u", "--auth-password", "secret"], allowFailure: true)

        // Each session's file is in place as the session ends, while the capture goes on.
        let names = ["lo-session-1.yaml", "lo-session-2.yaml", "lo-session-3.yaml"]
        try LiveProcess.waitUntil("three scenario files in \(live)") {
            Set((try? FileManager.default.contentsOfDirectory(atPath: live)) ?? []).isSuperset(of: names)
        }
        #expect(capture.isRunning)
        // tcpdump loses what it has not read when interrupted: wait until its file holds all three
        // (its buffer is made large, -B, so that a loaded machine does not make it drop packets).
        var written = ""
        try LiveProcess.waitUntil("tcpdump to write the three sessions", detail: { written }) {
            written = (try? CLITests().smtptape(["transcript", "--data", "none", tcpdumpFile]).text) ?? ""
            return written.components(separatedBy: "-- connection closed by").count == 4
        }

        tcpdump.interrupt()
        capture.interrupt()
        let captureEnd = try capture.wait()
        #expect(captureEnd.status == 0, "\(captureEnd.stderr)")
        #expect(captureEnd.stderr == "smtptape: capturing on lo\n")
        #expect(captureEnd.stdout == names.map { "\(live)/\($0)\n" }.joined())
        #expect(try tcpdump.wait().status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: live).sorted() == names, "nothing else, no staging folder left")

        let extracted = dir.appendingPathComponent("extracted").path
        let extract = try CLITests().smtptape(["extract", tcpdumpFile, "-o", extracted])
        #expect(extract.status == 0, "\(extract.stderr)")
        let fromFile = try (1...3).map { try Self.sessions(of: "\(extracted)/tcpdump-session-\($0).yaml") }
        let fromLive = try names.map { try Self.sessions(of: "\(live)/\($0)") }
        #expect(fromLive == fromFile)
        #expect(fromLive.map { $0.first?.steps.count } == [6, 7, 3])
        let auth = try String(contentsOfFile: "\(live)/lo-session-3.yaml", encoding: .utf8)
        #expect(auth.contains("AUTH PLAIN [REDACTED]") && !auth.contains("secret"))
    }

    @Test("transcripts are printed as sessions end; SIGTERM ends an open session as capture_ended; --pcap saves the same packets",
          .enabled(if: isRoot, "capturing needs root"),
          .enabled(if: haveTools, "tcpdump, swaks or Postfix's smtp-sink is not installed"))
    func transcriptsAsSessionsEnd() throws {
        let dir = try LiveProcess.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let port = try LiveProcess.freePort()
        let sink = try LiveProcess.sink(port: port)
        defer { sink.stop() }
        let saved = dir.appendingPathComponent("saved.pcap").path
        let capture = try LiveProcess([CLITests.executable.path, "capture", "--interface", "lo", "--filter", "tcp port \(port)", "--data", "full", "--pcap", saved])
        defer { capture.stop() }
        try capture.waitForStderr("smtptape: capturing on lo\n")

        try LiveProcess.run(["swaks", "--server", "127.0.0.1:\(port)", "--from", "alice@example.com", "--to", "bob@example.net", "--silent", "2"])
        try LiveProcess.waitUntil("session 1's transcript on standard output") { capture.stdout.contains("== summary: ") }
        #expect(!capture.stdout.contains("== session 2"))

        // A client that stays connected after EHLO.
        let client = try LiveProcess(["python3", "-c", """
            import socket, sys, time
            s = socket.create_connection(("127.0.0.1", \(port)))
            s.recv(1000)
            s.sendall(b"EHLO open.example\\r\\n")
            while not s.recv(1000).endswith(b"250 \\r\\n"): pass
            print("ready", flush=True)
            time.sleep(60)
            """])
        defer { client.stop() }
        try LiveProcess.waitUntil("the open client's EHLO answered") { client.stdout.contains("ready") }

        // The packets are in the kernel's buffer by now; those not read yet are read after the stop.
        capture.terminate()
        let end = try capture.wait()
        #expect(end.status == 0, "\(end.stderr)")
        let sessions = end.stdout.components(separatedBy: "== session ").dropFirst()
        #expect(sessions.count == 2)
        #expect(sessions.first?.contains("-- connection closed by the ") == true, "whoever sent the first FIN")
        #expect(sessions.last?.contains("C: EHLO open.example") == true)
        #expect(sessions.last?.contains("-- capture ended with the connection open") == true)

        // The saved packets read as a file give session 1 exactly as it was printed live.
        let file = try CLITests().smtptape(["transcript", "--data", "full", saved])
        let fromFile = file.text.components(separatedBy: "== session ").dropFirst()
        #expect(fromFile.count == 2)
        #expect(fromFile.first?.replacingOccurrences(of: "(\(saved))", with: "(lo)") == sessions.first)
    }

    @Test("without permission to capture: one line that says so, exit 2",
          .enabled(if: isRoot, "needs root to run the command as nobody"),
          .enabled(if: LiveProcess.available("setpriv"), "setpriv (util-linux) is not installed"))
    func withoutPermission() throws {
        let result = try LiveProcess.run(["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups",
                                          CLITests.executable.path, "capture", "--interface", "lo"], allowFailure: true)
        #expect(result.status == 2)
        #expect(result.stderr.hasPrefix("smtptape: lo: permission denied: capturing needs root or the CAP_NET_RAW capability"), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(result.stdout.isEmpty)
    }

    @Test("an interface that does not exist: one line, exit 2")
    func unknownInterface() throws {
        let result = try CLITests().smtptape(["capture", "--interface", "nosuch0"])
        #expect(result.status == 2)
        #expect(result.stderr.split(separator: "\n").count == 1)
        if Self.isRoot { #expect(result.stderr.hasPrefix("smtptape: nosuch0: no such interface"), "\(result.stderr)") }
    }

    @Test("a filter libpcap rejects: exit 64; --force without -o: exit 64; scenario files in the way: exit 2, named",
          .enabled(if: isRoot, "capturing needs root"))
    func refusedBeforeCapturing() throws {
        #expect(try CLITests().smtptape(["capture", "--interface", "lo", "--filter", "port twenty"]).status == 64)
        #expect(try CLITests().smtptape(["capture", "--interface", "lo", "--force"]).status == 64)
        let dir = try LiveProcess.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("kept\n".utf8).write(to: dir.appendingPathComponent("lo-session-7.yaml"))
        let refused = try CLITests().smtptape(["capture", "--interface", "lo", "-o", dir.path])
        #expect(refused.status == 2)
        #expect(refused.stderr == "smtptape: \(dir.path)/lo-session-7.yaml already exists; nothing was written (--force replaces existing files)\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["lo-session-7.yaml"])
    }

    static func sessions(of path: String) throws -> [Scenario.Session] {
        let result = ScenarioReader.read(file: path)
        var scenario = try #require(result.scenario, "\(path): \(result.diagnostics)")
        // Times differ between two captures of the same packets (each packet socket stamps its own copy).
        for index in scenario.sessions.indices {
            scenario.sessions[index].recordedGreetingDelay = nil
            for step in scenario.sessions[index].steps.indices { scenario.sessions[index].steps[step].recordedDelay = nil }
        }
        return scenario.sessions
    }

    @Test("--keylog with a live capture: curl writes its TLS secrets while the capture runs, and the session after STARTTLS is printed decrypted",
          .enabled(if: isRoot, "capturing needs root"),
          .enabled(if: LiveProcess.available("curl") && LiveProcess.available("python3"), "curl or python3 is not installed"))
    func keyLogWrittenDuringTheCapture() throws {
        let dir = try LiveProcess.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let port = try LiveProcess.freePort()
        let server = try LiveProcess.aiosmtpdWithSTARTTLS(port: port)
        defer { server.stop() }
        // The key log does not exist yet: curl creates it during the handshake.
        let keys = dir.appendingPathComponent("keys.txt").path
        let capture = try LiveProcess([CLITests.executable.path, "capture", "--interface", "lo", "--filter", "tcp port \(port)",
                                       "--port", String(port), "--keylog", keys, "--data", "full", "--color", "never"])
        defer { capture.stop() }
        try capture.waitForStderr("smtptape: capturing on lo\n")
        let message = dir.appendingPathComponent("message.eml").path
        try Data("Subject: live and decrypted\r\n\r\nhello over TLS\r\n".utf8).write(to: URL(fileURLWithPath: message))
        try LiveProcess.run(["env", "SSLKEYLOGFILE=" + keys, "curl", "-s", "-k", "--ssl-reqd", "--mail-from", "alice@example.com",
                             "--mail-rcpt", "bob@example.net", "-T", message, "smtp://127.0.0.1:\(port)/client.example.test"])
        try LiveProcess.waitUntil("the session's transcript", detail: { capture.stdout }) { capture.stdout.contains("== summary") }
        capture.interrupt()
        let end = try capture.wait()
        #expect(end.status == 0, "\(end.stderr)")
        #expect(end.stdout.contains("decrypted with the key log"), "\(end.stdout)")
        #expect(end.stdout.contains("C: MAIL FROM:<alice@example.com>"))
        #expect(end.stdout.contains("D: hello over TLS"))
        #expect(end.stdout.contains("STARTTLS (decrypted)"))
        #expect(!end.stderr.contains("cannot decrypt"), "\(end.stderr)")
    }

}

/// A program running beside the test, its output in files (so that nothing blocks on a pipe).
final class LiveProcess: @unchecked Sendable {
    let process = Process()
    let outFile: URL, errFile: URL

    init(_ arguments: [String]) throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("live-\(UUID().uuidString)")
        outFile = base.appendingPathExtension("out")
        errFile = base.appendingPathExtension("err")
        _ = FileManager.default.createFile(atPath: outFile.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errFile.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: Self.locate(arguments[0]) ?? arguments[0])
        process.arguments = Array(arguments.dropFirst())
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: outFile)
        process.standardError = try FileHandle(forWritingTo: errFile)
        // The child inherits the signal mask of the thread that starts it, and test threads block
        // SIGINT and SIGTERM: unblocked here, tcpdump (and smtp-sink) can be stopped with them.
        var stops = sigset_t(), previous = sigset_t()
        sigemptyset(&stops)
        sigaddset(&stops, SIGINT)
        sigaddset(&stops, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &stops, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        try process.run()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: outFile)
        try? FileManager.default.removeItem(at: errFile)
    }

    var stdout: String { (try? String(contentsOf: outFile, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOf: errFile, encoding: .utf8)) ?? "" }
    var isRunning: Bool { process.isRunning }
    var name: String { process.executableURL?.lastPathComponent ?? "" }

    func waitForStderr(_ text: String, timeout: Double = 60) throws {
        try Self.waitUntil("'\(text)' on the standard error of \(name)", timeout: timeout) {
            stderr.contains(text) || !isRunning
        }
        try #require(stderr.contains(text), "exited early: \(stderr)")
    }

    func interrupt() { if isRunning { process.interrupt() } }
    func terminate() { if isRunning { process.terminate() } }
    /// Ends the program (SIGTERM, then SIGKILL after 5 s) and waits for it.
    func stop() {
        guard isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(5)
        while isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    struct Ending {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Waits for the program to exit (killed after `timeout` seconds: a failure).
    func wait(timeout: Double = 60) throws -> Ending {
        try Self.waitUntil("\(name) to exit", timeout: timeout) { !isRunning }
        process.waitUntilExit()
        return Ending(status: process.terminationStatus, stdout: stdout, stderr: stderr)
    }

    /// Runs a program to its end.
    @discardableResult
    static func run(_ arguments: [String], allowFailure: Bool = false) throws -> Ending {
        let program = try LiveProcess(arguments)
        let end = try program.wait(timeout: 60)
        if !allowFailure { try #require(end.status == 0, "\(arguments.joined(separator: " ")): \(end.stderr)") }
        return end
    }

    /// Waits for `condition`, failing after `timeout` seconds: generous, for a machine busy
    /// with the rest of the suite (a condition that holds ends the wait at once).
    static func waitUntil(_ what: String, timeout: Double = 60, detail: () -> String = { "" }, _ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !condition() {
            try #require(Date() < deadline, "timed out waiting for \(what)\n\(detail())")
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// Where the program `name` is: on the PATH, or in /usr/sbin, where Postfix keeps smtp-sink.
    static func locate(_ name: String) -> String? {
        if name.contains("/") { return name }
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin") + ":/usr/sbin:/sbin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static func available(_ name: String) -> Bool { locate(name) != nil }

    static func folder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("live-capture-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A loopback port nothing listens on (the kernel's pick for port 0).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        try #require(bound)
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Whether something accepts connections on the loopback port.
    static func listening(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// The capture script's aiosmtpd (Captures/servers/aiosmtpd_server.py) with STARTTLS on
    /// 127.0.0.1:`port`, listening before any capture starts.
    static func aiosmtpdWithSTARTTLS(port: Int) throws -> LiveProcess {
        let script = Fixtures.captures.appendingPathComponent("servers/aiosmtpd_server.py").path
        let server = try LiveProcess(["python3", script, "--port", String(port), "--starttls"])
        try waitUntil("aiosmtpd to listen on \(port)") { listening(port) || !server.isRunning }
        try #require(server.isRunning, "aiosmtpd: \(server.stderr)")
        return server
    }

    /// Postfix's smtp-sink on 127.0.0.1:`port`, listening before any capture starts (so that the
    /// probe connection is not captured).
    static func sink(port: Int) throws -> LiveProcess {
        let sink = try LiveProcess(["smtp-sink", "-u", "nobody", "127.0.0.1:\(port)", "10"])
        try waitUntil("smtp-sink to listen on \(port)") { listening(port) || !sink.isRunning }
        try #require(sink.isRunning, "smtp-sink: \(sink.stderr)")
        return sink
    }
}
