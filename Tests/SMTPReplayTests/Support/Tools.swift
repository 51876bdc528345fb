import Foundation
import SMTPScenario
import Testing

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
        try process.run()
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

    /// A file in a fresh temporary folder.
    static func temporaryFile(_ name: String, contents: String) throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("smtptape-replay-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let url = folder.appendingPathComponent(name)
        try Data(contents.utf8).write(to: url)
        return url.path
    }
}

