import Foundation
import SMTPCapture
import SMTPTLS
import SMTPCore
import SMTPTranscript

enum Fixtures {
    /// The repository's root, found from this file's path (tests run without network or setup).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let captures = root.appendingPathComponent("Captures")
    static let golden = root.appendingPathComponent("Tests/SMTPCaptureTests/Golden")

    /// Every capture in `Captures/`, by name without extension.
    static var captureNames: [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: captures.path)) ?? []
        return files.filter { $0.hasSuffix(".pcap") }.map { String($0.dropLast(5)) }.sorted()
    }

    static func capture(_ name: String) -> String { captures.appendingPathComponent(name + ".pcap").path }

    /// The key logs beside captures (`NAME.keys`, written by a party of the session when the
    /// capture was made), or nil when none of them has one.
    static func keys(for paths: [String]) -> KeyLogStore? {
        let files = paths.map { ($0.hasSuffix(".pcap") ? String($0.dropLast(5)) : $0) + ".keys" }
            .filter { FileManager.default.fileExists(atPath: $0) }
        guard !files.isEmpty else { return nil }
        let store = KeyLogStore()
        for file in files { try! store.add(file: file) }
        return store
    }

    /// Reads captures into a recording observer, with their key logs (`keyLogs: false` reads them
    /// as if there were none).
    static func extract(_ paths: [String], options: ExtractionOptions = ExtractionOptions(), keyLogs: Bool = true) -> (RecordingObserver, [FileReport]) {
        let observer = RecordingObserver()
        var options = options
        if keyLogs, options.keys == nil { options.keys = keys(for: paths) }
        let extractor = SMTPExtractor(options: options, observer: observer)
        let reports = paths.map { extractor.read(file: $0) }
        return (observer, reports)
    }

    /// Runs an observer that writes to a file descriptor and returns what it wrote.
    static func render(_ paths: [String], _ make: (ByteOutput) -> any SessionObserver) throws -> String {
        try render(paths, keys: keys(for: paths), make)
    }

    /// The same, with the given TLS secrets (or none) in place of the key logs beside the captures.
    static func render(_ paths: [String], keys: KeyLogStore?, _ make: (ByteOutput) -> any SessionObserver) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("smtptape-render-\(UUID().uuidString)")
        let descriptor = open(url.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        defer { try? FileManager.default.removeItem(at: url) }
        let output = ByteOutput(descriptor: descriptor)
        let extractor = SMTPExtractor(options: ExtractionOptions(keys: keys), observer: make(output))
        for path in paths { _ = extractor.read(file: path) }
        output.flush()
        close(descriptor)
        return try String(contentsOf: url, encoding: .utf8)
    }

    static func temporaryFile(_ name: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("smtptape-test-\(UUID().uuidString)-\(name)")
    }
}
