import Foundation
import Testing

/// `smtptape replay` as users run it: a child process whose first line of standard output is the
/// bound address.
final class ReplayProcess: @unchecked Sendable {
    static let executable = ProcessInfo.processInfo.environment["SMTPTAPE_BINARY"].map { URL(fileURLWithPath: $0) }
        ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("smtptape")

    let process = Process()
    let stdout = Pipe()
    let stderrFile: URL
    /// `HOST:PORT` from the first line.
    private(set) var address = ""
    var port: Int { Int(address.split(separator: ":").last ?? "") ?? 0 }

    /// Starts `smtptape COMMAND ARGUMENTS` (`replay` by default) and waits (up to 10 s) for the
    /// address line; it stays empty when the process ended first (``finish()`` tells why).
    init(_ arguments: [String], command: String = "replay") throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.executable.path), "build the smtptape product first (swift build --build-tests)")
        stderrFile = FileManager.default.temporaryDirectory.appendingPathComponent("replay-\(UUID().uuidString).err")
        FileManager.default.createFile(atPath: stderrFile.path, contents: nil)
        process.executableURL = Self.executable
        process.arguments = [command] + arguments
        process.standardOutput = stdout
        process.standardError = try FileHandle(forWritingTo: stderrFile)
        try process.run()
        address = readFirstLine(timeout: 10) ?? ""
    }

    private func readFirstLine(timeout: Double) -> String? {
        let handle = stdout.fileHandleForReading
        var line = Data()
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let byte = handle.readData(ofLength: 1)
            if byte.isEmpty { return nil }
            if byte == Data([0x0A]) { return String(decoding: line, as: UTF8.self) }
            line.append(byte)
        }
        return nil
    }

    struct Ending {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Waits for the process to exit (killing it after `timeout`), and returns what it said.
    func finish(timeout: Double = 20) -> Ending {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        if process.isRunning { process.terminate(); kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        let rest = stdout.fileHandleForReading.readDataToEndOfFile()
        let stderr = (try? String(contentsOf: stderrFile, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(at: stderrFile)
        return Ending(status: process.terminationStatus, stdout: String(decoding: rest, as: UTF8.self), stderr: stderr)
    }

    func signal(_ number: Int32) {
        kill(process.processIdentifier, number)
    }

    /// Resident memory of the server process, in KiB (from /proc).
    var residentKiB: Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return nil }
        return Int(line.split(separator: " ").dropFirst().first ?? "")
    }
}
