import Foundation
import SMTPScenario
import SMTPTapeTesting
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How long `withReplayServer` takes to start serving: from the call to the body running, and to
/// a TCP connect to the server succeeding. A measurement, not a check: it prints the figures and
/// asserts nothing about them (bench/replay.sh reads them and compares with the target).
///
/// Opt-in, because timings on a shared machine are no test: run it with
/// `SMTPTAPE_BENCH_STARTUP=1 swift test --skip-build --filter StartupBenchmark`.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["SMTPTAPE_BENCH_STARTUP"] != nil,
                "a benchmark: set SMTPTAPE_BENCH_STARTUP=1 to run it"))
struct StartupBenchmark {
    /// The scenario bench/replay.sh serves; parsed before the clock starts.
    static let scenarioFile = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("bench/smtp-source.yaml").path

    @Test("withReplayServer: call to serving")
    func startup() async throws {
        let runs = Int(ProcessInfo.processInfo.environment["SMTPTAPE_BENCH_STARTUP_RUNS"] ?? "") ?? 30
        let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: Self.scenarioFile)))
        let scenario = try #require(ScenarioReader.parse(bytes: bytes, file: Self.scenarioFile).scenario)
        var body: [Double] = []
        var connected: [Double] = []
        // Run 0 is the process's first server: it also starts the shared event-loop threads.
        for _ in 0...runs {
            let clock = ContinuousClock()
            let start = clock.now
            nonisolated(unsafe) var inBody = Duration.zero, afterConnect = Duration.zero
            _ = try await withReplayServer(playing: [scenario], options: .init(drainTimeout: 1)) { server in
                inBody = clock.now - start
                let socket = try Self.connect(port: server.port)
                afterConnect = clock.now - start
                close(socket)
            }
            body.append(Self.milliseconds(inBody))
            connected.append(Self.milliseconds(afterConnect))
        }
        print("replay start-up (in-process): first body \(Self.format(body[0])) ms, first connect \(Self.format(connected[0])) ms")
        print("replay start-up (in-process): median body \(Self.format(Self.median(body.dropFirst()))) ms, median connect \(Self.format(Self.median(connected.dropFirst()))) ms "
              + "(fastest \(Self.format(connected.dropFirst().min()!)), slowest \(Self.format(connected.dropFirst().max()!)), \(runs) runs after the first)")
    }

    /// A blocking TCP connect to 127.0.0.1 (returns the socket).
    static func connect(port: Int) throws -> Int32 {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                #if canImport(Glibc)
                Glibc.connect(fd, pointer, socklen_t(MemoryLayout<sockaddr_in>.size))
                #else
                Darwin.connect(fd, pointer, socklen_t(MemoryLayout<sockaddr_in>.size))
                #endif
            }
        }
        guard result == 0 else {
            close(fd)
            throw POSIXError(.ECONNREFUSED)
        }
        return fd
    }

    static func milliseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
    }

    static func median<C: Collection<Double>>(_ values: C) -> Double {
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    static func format(_ value: Double) -> String { String(format: "%.2f", value) }
}
