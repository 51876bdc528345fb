import Foundation
import SMTPScenario
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Real SMTP clients and other programs the replay tests run.
enum Tools {
    /// Whether `name` is on the PATH (a missing client skips its tests locally; CI installs them).
    static func available(_ name: String) -> Bool {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(name)") }
    }

    /// Whether python3 can import `module`.
    static func python(has module: String) -> Bool {
        guard available("python3") else { return false }
        return (try? run(["python3", "-c", "import \(module)"]).status) == 0
    }

    struct Result: Sendable {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs a program to its end (killed after `timeout` seconds), with `input` on standard input.
    @discardableResult
    static func run(_ arguments: [String], input: String = "", timeout: Double = 30, environment: [String: String] = [:]) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try Tools.launch(process)
        let killer = DispatchWorkItem { if process.isRunning { process.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try? stdin.fileHandleForWriting.close()
        // Read both pipes to their ends before waiting, so a chatty program cannot block.
        let group = DispatchGroup()
        nonisolated(unsafe) var out = Data(), err = Data()
        DispatchQueue.global().async(group: group) { out = stdout.fileHandleForReading.readDataToEndOfFile() }
        DispatchQueue.global().async(group: group) { err = stderr.fileHandleForReading.readDataToEndOfFile() }
        group.wait()
        process.waitUntilExit()
        killer.cancel()
        return Result(status: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
    }

    /// Starts `process` with no signal blocked. A child inherits the mask of the thread that
    /// spawns it, and the threads tests run on block SIGINT and SIGTERM: tcpdump would never hear
    /// the SIGINT that ends a capture, nor a server or a hung client the SIGTERM that stops it.
    static func launch(_ process: Process) throws {
        var none = sigset_t(), previous = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        try process.run()
    }

    /// `run` off the cooperative thread pool (it blocks while the program runs).
    static func runAsync(_ arguments: [String], input: String = "", timeout: Double = 30, environment: [String: String] = [:]) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Swift.Result { try run(arguments, input: input, timeout: timeout, environment: environment) })
            }
        }
    }

    /// A scenario from YAML text (the test fails if it does not read).
    static func scenario(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Scenario {
        let result = ScenarioReader.parse(yaml, file: "test.yaml")
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics.map(\.description))", sourceLocation: sourceLocation)
        return try #require(result.scenario, sourceLocation: sourceLocation)
    }

    /// YAML steps moved two columns right, to sit in a session's `steps` list.
    static func indented(_ steps: String) -> String {
        steps.split(separator: "\n", omittingEmptySubsequences: false).map { $0.isEmpty ? "" : "  " + $0 }.joined(separator: "\n")
    }

    /// The server lines of a client's own transcript, in order: swaks marks them `<-` (`<~` under
    /// TLS, `<**` and `<~*` for errors), curl -v `<`, msmtp --debug `<--`.
    static func serverLines(_ transcript: String) -> [String] {
        lines(transcript).filter { $0.hasPrefix("<") }
    }

    /// Lines ended by LF or CRLF (a Swift `Character` holds CRLF whole, so `split(separator: "\n")`
    /// would not cut there).
    static func lines(_ text: String) -> [String] {
        text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(String.init)
    }

    /// The built `smtptape` executable: beside the test bundle, or SMTPTAPE_BINARY.
    static let smtptape = ProcessInfo.processInfo.environment["SMTPTAPE_BINARY"]
        ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("smtptape").path

    /// The repository's root (for Captures/servers/aiosmtpd_server.py).
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Whether tcpdump can capture on loopback here: it needs root (or capabilities we do not probe).
    static var canCaptureLoopback: Bool {
        available("tcpdump") && geteuid() == 0
    }

    /// A loopback TCP port that was free a moment ago (bound to port 0, then closed).
    static func freePort() throws -> Int {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw ToolError(description: "socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw ToolError(description: "cannot bind a loopback port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Whether something listens on 127.0.0.1:`port` (from /proc/net/tcp: asking by connecting
    /// would leave a connection of its own behind).
    static func isListening(port: Int) -> Bool {
        let local = String(format: "0100007F:%04X", port), any = String(format: "00000000:%04X", port)
        guard let table = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return false }
        return table.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ")
            return fields.count > 3 && (fields[1] == local || fields[1] == any) && fields[3] == "0A"  // TCP_LISTEN
        }
    }

    /// A file in a fresh temporary folder.
    static func temporaryFile(_ name: String, contents: String) throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("smtptape-replay-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let url = folder.appendingPathComponent(name)
        try Data(contents.utf8).write(to: url)
        return url.path
    }
}


struct ToolError: Error, CustomStringConvertible {
    let description: String
}

/// A program left running while the test talks to it (a server, tcpdump, `smtptape replay`).
/// Its output goes to files, so that it never blocks on a pipe nobody reads.
final class BackgroundProcess: @unchecked Sendable {
    let process = Process()
    let name: String
    let folder: URL
    let stdoutPath: String
    let stderrPath: String

    init(_ arguments: [String]) throws {
        name = arguments.first ?? "?"
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("smtptape-replay-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        stdoutPath = folder.appendingPathComponent("stdout").path
        stderrPath = folder.appendingPathComponent("stderr").path
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        defer {
            try? out.close()
            try? err.close()
        }
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = out
        process.standardError = err
        try Tools.launch(process)
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: folder)
    }

    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// Waits until `condition` holds of the output so far (checked every 20 ms); fails if the
    /// program exits first or `timeout` passes.
    func waitUntil(_ what: String, timeout: Double = 10, _ condition: (_ stdout: String, _ stderr: String) -> Bool) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !condition(stdout, stderr) {
            guard process.isRunning else { throw ToolError(description: "\(name) exited (\(process.terminationStatus)) before \(what): \(stderr)") }
            guard Date() < deadline else { throw ToolError(description: "\(name): no \(what) after \(timeout) s: \(stderr)") }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
    }

    /// Waits for the program to exit (killing it after `timeout`); returns its exit status.
    @discardableResult
    func wait(timeout: Double = 10) async throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            guard Date() < deadline else {
                stop()
                throw ToolError(description: "\(name) still running after \(timeout) s: \(stderr)")
            }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        return process.terminationStatus
    }

    /// SIGINT, as a person stopping it would.
    func interrupt() {
        if process.isRunning { kill(process.processIdentifier, SIGINT) }
    }

    /// SIGTERM if still running (cleanup after a failure).
    func stop() {
        if process.isRunning { process.terminate() }
    }
}
