import ArgumentParser
import SMTPCapture
import SMTPCore
import SMTPScenario

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Options every command that reads captures shares (see CONVENTIONS.md).
struct CaptureOptions: ParsableArguments {
    @Argument(help: ArgumentHelp("pcap or pcapng files, read in order; session numbers run on across them.", valueName: "capture"))
    var captures: [String]

    @Option(name: .customLong("port"), help: ArgumentHelp("An extra TCP port to treat as SMTP (repeatable). 25, 465, 587 and 2525 always are, and a 220 greeting on any port is detected.", valueName: "N"))
    var ports: [UInt16] = []

    @Option(help: ArgumentHelp("A libpcap (BPF) filter applied before anything else, e.g. 'host 192.0.2.1'.", valueName: "BPF"))
    var filter: String?

    @Flag(help: "Keep AUTH credentials in the output. Without it they are replaced by \(Secrets.placeholder).")
    var showSecrets = false

    func validate() throws {
        if captures.isEmpty { throw ValidationError("Name at least one capture file.") }
    }

    var extractionOptions: ExtractionOptions {
        ExtractionOptions(extraPorts: ports, filter: filter)
    }

    /// Reads every capture into `observer`, prints warnings and errors (one line each) on standard
    /// error, and returns the exit status. With `scenarios`, inputs that are scenario files are
    /// played into the observer too, their sessions numbered on from the captures'.
    func run(into observer: any SessionObserver, scenarios: Bool = false, beforeWarnings: () -> Void = {}) -> Int32 {
        let extractor = SMTPExtractor(options: extractionOptions, observer: observer)
        let progress = Progress(enabled: isatty(2) != 0)
        if progress.enabled { extractor.progress = { progress.show($0) } }
        var status: Int32 = 0
        var messages: [String] = []
        for capture in captures {
            if scenarios, ScenarioFiles.isScenario(capture) {
                let result = ScenarioReader.read(file: capture)
                messages += result.diagnostics.map(\.description)
                if let scenario = result.scenario {
                    extractor.nextSessionID += ScenarioPlayback.render(scenario, source: capture, firstSessionID: extractor.nextSessionID, into: observer)
                } else {
                    status = max(status, result.unreadable ? 2 : 1)
                }
                continue
            }
            let report = extractor.read(file: capture)
            progress.clear()
            if let error = report.error {
                messages.append("smtptape: " + error.description)
                status = max(status, error.exitCode)
                if error.kind == .badArguments { break }
            }
            messages += report.warnings.map { "smtptape: warning: " + $0 }
            if report.corruptPackets > 0 || (report.error == nil && report.sessions == 0) { status = max(status, 1) }
        }
        beforeWarnings()
        for message in messages { Standard.error(message) }
        return status
    }
}

/// Progress on standard error, for captures that take a while on a terminal.
final class Progress {
    let enabled: Bool
    var shown = false

    init(enabled: Bool) { self.enabled = enabled }

    func show(_ progress: ExtractionProgress) {
        guard enabled, progress.fileSize > 0 else { return }
        let percent = min(100, progress.bytesRead * 100 / progress.fileSize)
        Standard.errorRaw("\r\u{1B}[K\(progress.file): \(percent)% (\(progress.packets) packets)")
        shown = true
    }

    func clear() {
        if shown { Standard.errorRaw("\r\u{1B}[K") }
        shown = false
    }
}

enum Standard {
    static func error(_ line: String) { errorRaw(line + "\n") }

    static func errorRaw(_ text: String) {
        var text = text
        text.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
    }
}

enum ScenarioFiles {
    /// Scenario files by their extension (`.yaml`, `.yml`), or by starting as smtptape writes
    /// them (`version:`); anything else is read as a capture.
    static func isScenario(_ path: String) -> Bool {
        let lower = path.lowercased()
        if lower.hasSuffix(".yaml") || lower.hasSuffix(".yml") { return true }
        if lower.hasSuffix(".pcap") || lower.hasSuffix(".pcapng") || lower.hasSuffix(".cap") { return false }
        guard let file = fopen(path, "rb") else { return false }
        defer { fclose(file) }
        var start = [UInt8](repeating: 0, count: 8)
        guard fread(&start, 1, 8, file) == 8 else { return false }
        return start == Array("version:".utf8)
    }
}
