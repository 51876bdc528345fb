import ArgumentParser
import SMTPCapture
import SMTPCore
import SMTPFiles
import SMTPScenario
import SMTPTLS
import SMTPTranscript

/// The options of every command that reads captures (see the README's flag table).
struct CaptureOptions: ParsableArguments {
    @Option(name: .customLong("port"), help: ArgumentHelp("An extra TCP port to treat as SMTP (repeatable). 25, 465, 587 and 2525 always are, and a 220 greeting on any port is detected.", valueName: "N"))
    var ports: [UInt16] = []

    @Option(help: ArgumentHelp("A libpcap (BPF) filter applied before anything else, e.g. 'host 192.0.2.1'.", valueName: "BPF"))
    var filter: String?

    @Option(name: .customLong("keylog"), help: ArgumentHelp("A TLS key log in the NSS format (SSLKEYLOGFILE; repeatable): sessions after STARTTLS and implicit-TLS sessions are decrypted. Keys embedded in a pcapng file (editcap --inject-secrets) are used without it.", valueName: "FILE"))
    var keylogs: [String] = []

    var extractionOptions: ExtractionOptions {
        ExtractionOptions(extraPorts: ports, filter: filter)
    }

    /// The key logs named with `--keylog`, read (nil without any), or a one-line error and exit 2.
    /// `following`: read the files again as they grow (live capture).
    func keyLogStore(following: Bool = false) throws -> KeyLogStore? {
        guard !keylogs.isEmpty else { return nil }
        let store = KeyLogStore()
        store.followsFiles = following
        for path in keylogs {
            do {
                try store.add(file: path)
            } catch {
                Standard.error("smtptape: \(error.message)")
                throw ExitCode(2)
            }
        }
        return store
    }
}

/// `--show-secrets`, for the commands whose output can hold AUTH credentials.
struct SecretsOption: ParsableArguments {
    @Flag(help: "Keep AUTH credentials in the output. Without it they are replaced by \(Secrets.placeholder).")
    var showSecrets = false
}

extension DataDisplay: ExpressibleByArgument {}

/// `--format`, `--data` and `--color`: how `transcript` and `capture` print dialogues.
struct TranscriptOptions: ParsableArguments {
    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    enum ColourChoice: String, ExpressibleByArgument, CaseIterable {
        case auto, always, never
    }

    @Option(help: "Output format: text for people, json for JSON Lines (one event per line).")
    var format: Format = .text

    @Option(help: ArgumentHelp("Message data in text transcripts: full, headers (the header section), or none. JSON always has all of it.", valueName: "full|headers|none"))
    var data: DataDisplay = .headers

    @Option(help: "Colour in text transcripts: auto (on a terminal), always, never.")
    var color: ColourChoice = .auto

    /// The transcript writer for standard output (`output`); with `flushesEachSession`, each
    /// session is written out as it ends.
    func renderer(output: ByteOutput, showSecrets: Bool, flushesEachSession: Bool = false) -> any SessionObserver {
        switch format {
        case .json:
            let writer = JSONTranscriptWriter(output: output, showSecrets: showSecrets)
            writer.flushesEachSession = flushesEachSession
            return writer
        case .text:
            let colour = color == .always || (color == .auto && isTerminal(1))
            let renderer = TextTranscriptRenderer(output: output, data: data, showSecrets: showSecrets, colour: colour)
            renderer.flushesEachSession = flushesEachSession
            return renderer
        }
    }
}

/// `-o DIR` and `--force`, for the commands that write files into a folder.
struct OutputOptions: ParsableArguments {
    @Option(name: [.short, .customLong("output")], help: ArgumentHelp("The folder to write into; created if missing.", valueName: "DIR"))
    var output: String

    @Flag(help: "Replace files that already exist in the output folder (without it, nothing is written and the command exits 2).")
    var force = false

    /// Opens the folder, or prints why it cannot be and exits 2.
    func open() throws -> OutputFolder { try Self.open(output, force: force) }

    /// Opens the folder `path` (for `--force`, files in it may be replaced), or prints why it
    /// cannot be and exits 2.
    static func open(_ path: String, force: Bool) throws -> OutputFolder {
        do {
            return try OutputFolder(path: path, replaceExisting: force)
        } catch {
            Standard.error("smtptape: \(error.description)")
            throw ExitCode(2)
        }
    }

    /// Names the files that are in the way, suggests --force, and exits 2.
    static func refuse(_ existing: [String]) throws -> Never {
        let more = existing.count > 1 ? " (and \(existing.count - 1) more)" : ""
        Standard.error("smtptape: \(existing[0]) already exists\(more); nothing was written (--force replaces existing files)")
        throw ExitCode(2)
    }

    /// Moves the staged files into place and prints their paths; on a conflict, names the files,
    /// suggests --force, and leaves the folder as it was (exit 2).
    func commit(_ folder: OutputFolder) throws -> [String] {
        do {
            return try folder.commit()
        } catch let conflict as OutputFolder.Conflict {
            try Self.refuse(conflict.existing)
        } catch {
            Standard.error("smtptape: \(error)")
            throw ExitCode(2)
        }
    }
}

/// What each input turned out to be, and the status so far.
struct InputRun {
    var status: Int32 = 0
    var messages: [String] = []
}

/// Reads inputs in order, each once: captures into `observer`, and (when allowed) scenario files,
/// played into the same observer with their sessions numbered on. Warnings and errors are
/// gathered, one line each, and printed by `finish`.
final class InputReader {
    let options: CaptureOptions
    let observer: any SessionObserver
    let extractor: SMTPExtractor
    let progress = Progress(enabled: StandardStream.isTerminal(2))
    var run = InputRun()

    /// TLS secrets: `--keylog` files, and those embedded in pcapng inputs as they are read.
    let keys: KeyLogStore

    /// Reads the key logs named by `options` first (exits 2 when one cannot be read).
    init(options: CaptureOptions, observer: any SessionObserver) throws {
        self.options = options
        let named = try options.keyLogStore()
        keys = named ?? KeyLogStore()
        self.observer = observer
        extractor = SMTPExtractor(options: options.extractionOptions, observer: observer)
        if named != nil { extractor.keys = keys }
        run.messages += keys.takeWarnings().map { "smtptape: warning: " + $0 }
        if progress.enabled { extractor.progress = { [progress] in progress.show($0) } }
    }

    /// Reads `paths`; `afterEach` sees each input once it was read to the end. With `hashing`,
    /// each input's SHA-256 is computed as it is read (``InputSource/finishDigest()``).
    func read(_ paths: [String], scenarios: Bool, hashing: Bool = false, afterEach: (InputSource) -> Void = { _ in }) {
        for path in paths {
            let input: InputSource
            do {
                input = try InputSource(path: path, hashing: hashing)
            } catch {
                run.messages.append("smtptape: " + (path == "-" ? "stdin: " + error.message : error.description))
                run.status = max(run.status, 2)
                continue
            }
            if scenarios, InputKind.of(input) == .scenario {
                let result = ScenarioReader.read(input)
                run.messages += result.diagnostics.map(\.description)
                if let scenario = result.scenario {
                    extractor.nextSessionID += ScenarioPlayback.render(scenario, source: result.file, firstSessionID: extractor.nextSessionID, into: observer)
                    if !result.diagnostics.isEmpty { run.status = max(run.status, 1) }
                } else {
                    run.status = max(run.status, result.unreadable ? 2 : 1)
                }
                afterEach(input)
                continue
            }
            useEmbeddedSecrets(input)
            let report = extractor.read(input)
            progress.clear()
            if let error = report.error {
                run.messages.append("smtptape: " + error.description)
                run.status = max(run.status, error.exitCode)
                if error.kind == .badArguments { break }
            }
            run.messages += report.warnings.map { "smtptape: warning: " + $0 }
            if report.corruptPackets > 0 || (report.error == nil && report.sessions == 0) { run.status = max(run.status, 1) }
            afterEach(input)
        }
    }

    /// A pcapng file's Decryption Secrets Blocks (`editcap --inject-secrets`) join the key log.
    /// They are found by walking the file's block headers before it is read, so only in files
    /// (not pipes).
    func useEmbeddedSecrets(_ input: InputSource) {
        guard input.path != "-", input.peek(4).elementsEqual([0x0A, 0x0D, 0x0D, 0x0A]) else { return }
        let blocks = PcapngSecrets.keyLogs(inFile: input.path)
        guard !blocks.isEmpty else { return }
        var log = KeyLog()
        for block in blocks { log.add(block, name: input.path + " (decryption secrets block)") }
        keys.add(log)
        run.messages += keys.takeWarnings().map { "smtptape: warning: " + $0 }
        extractor.keys = keys
    }

    /// Prints the gathered warnings and errors; returns the exit status.
    func finish() -> Int32 {
        for message in run.messages { Standard.error(message) }
        return run.status
    }
}

/// Telling a capture from a scenario by its first bytes: pcap and pcapng files start with a
/// magic number; scenarios are YAML, by their extension or by starting (after comments) with
/// `version:` or `---`. Anything else is read as a capture, which says what is wrong with it.
enum InputKind: Equatable {
    case capture, scenario

    static func of(_ input: InputSource) -> InputKind {
        let head = input.peek(4096)
        if head.count >= 4 {
            let magic = UInt32(head[0]) << 24 | UInt32(head[1]) << 16 | UInt32(head[2]) << 8 | UInt32(head[3])
            if [0xA1B2_C3D4, 0xD4C3_B2A1, 0xA1B2_3C4D, 0x4D3C_B2A1, 0x0A0D_0D0A].contains(magic) { return .capture }
        }
        let lower = input.path.lowercased()
        if lower.hasSuffix(".yaml") || lower.hasSuffix(".yml") { return .scenario }
        var text = head.starts(with: [0xEF, 0xBB, 0xBF]) ? Array(head.dropFirst(3)) : head
        // Skip blank lines and comments.
        while let first = text.first, first == 0x23 || first == 0x0A || first == 0x0D || first == 0x20 {
            if let newline = text.firstIndex(of: 0x0A) { text.removeSubrange(...newline) } else { return .capture }
        }
        return text.starts(with: Array("version:".utf8)) || text.starts(with: Array("---".utf8)) ? .scenario : .capture
    }
}

/// Progress on standard error, for captures that take a while on a terminal.
final class Progress: @unchecked Sendable {
    let enabled: Bool
    var shown = false

    init(enabled: Bool) { self.enabled = enabled }

    func show(_ progress: ExtractionProgress) {
        guard enabled else { return }
        let position = progress.fileSize > 0 ? "\(min(100, progress.bytesRead * 100 / progress.fileSize))%" : "\(progress.bytesRead >> 20) MiB"
        Standard.errorRaw("\r\u{1B}[K\(progress.file): \(position) (\(progress.packets) packets)")
        shown = true
    }

    func clear() {
        if shown { Standard.errorRaw("\r\u{1B}[K") }
        shown = false
    }
}

enum Standard {
    static func error(_ line: String) { errorRaw(line + "\n") }

    /// A line on standard output, written at once (a server's bound address, before it serves).
    static func output(_ line: String) {
        var text = line + "\n"
        text.withUTF8 { _ = StandardStream.write(UnsafeRawBufferPointer($0), to: 1) }
    }

    static func errorRaw(_ text: String) {
        var text = text
        text.withUTF8 { _ = StandardStream.write(UnsafeRawBufferPointer($0), to: 2) }
    }
}
