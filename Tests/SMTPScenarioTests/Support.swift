import Foundation
import SMTPCapture
import SMTPTLS
import SMTPCore
import SMTPFiles
import SMTPScenario
import SMTPTranscript

enum Repository {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let scenarios = root.appendingPathComponent("Scenarios")
    static let captures = root.appendingPathComponent("Captures")
    static let broken = root.appendingPathComponent("Tests/SMTPScenarioTests/Broken")

    static func files(in folder: URL, ending suffix: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter { $0.hasSuffix(suffix) }.sorted().map { folder.appendingPathComponent($0).path }
    }

    static var scenarioFiles: [String] {
        files(in: scenarios, ending: ".yaml") + files(in: scenarios.appendingPathComponent("recorded"), ending: ".yaml")
    }

    static var captureFiles: [String] { files(in: captures, ending: ".pcap") }

    /// Scenarios extracted in-process from a capture, one per session.
    static func extract(_ capture: String, showSecrets: Bool = false) -> [Scenario] {
        var scenarios: [Scenario] = []
        let recorder = ScenarioRecorder(showSecrets: showSecrets) { info in
            Scenario.Origin(capture: URL(fileURLWithPath: info.source).lastPathComponent, sha256: (try? InputSource(path: info.source, hashing: true))?.finishDigest(),
                            connection: "\(info.client) -> \(info.server)", session: info.id, start: info.start.rfc3339)
        }
        recorder.onScenario = { _, scenario in scenarios.append(scenario) }
        _ = SMTPExtractor(options: ExtractionOptions(keys: keys(for: capture)), observer: recorder).read(file: capture)
        return scenarios
    }

    /// The key log beside a capture (`NAME.keys`), if the capture has one.
    static func keys(for capture: String) -> KeyLogStore? {
        let file = String(capture.dropLast(5)) + ".keys"
        guard capture.hasSuffix(".pcap"), FileManager.default.fileExists(atPath: file) else { return nil }
        let store = KeyLogStore()
        try? store.add(file: file)
        return store
    }

    /// What a renderer writes, captured through a temporary file.
    static func render(_ body: (ByteOutput) -> Void) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("render-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        let descriptor = open(url.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let output = ByteOutput(descriptor: descriptor)
        body(output)
        output.flush()
        close(descriptor)
        return try String(contentsOf: url, encoding: .utf8)
    }
}
