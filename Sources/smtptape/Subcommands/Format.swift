import ArgumentParser
import SMTPScenario

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct Format: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rewrite scenario files in canonical form.",
        discussion: """
            The canonical form is written from the parsed scenario alone (comments are dropped: \
            keep remarks in 'note' fields). Files with problems are reported as by 'check' and \
            left alone. With --check nothing is written: files not in canonical form are named \
            and the exit status is 1.

            Examples:
              smtptape format Scenarios/*.yaml
              smtptape format --check Scenarios/*.yaml
            """
    )

    @Argument(help: ArgumentHelp("Scenario files.", valueName: "scenario"))
    var files: [String]

    @Flag(help: "Only report files that are not in canonical form.")
    var check = false

    func validate() throws {
        if files.isEmpty { throw ValidationError("Name at least one scenario file.") }
    }

    func run() throws {
        var status: Int32 = 0
        for file in files {
            let result = ScenarioReader.read(file: file)
            guard let scenario = result.scenario else {
                for diagnostic in result.diagnostics { Standard.error(diagnostic.description) }
                status = max(status, result.unreadable ? 2 : 1)
                continue
            }
            let canonical = ScenarioWriter.yaml(scenario)
            let current = Self.contents(file)
            if current == canonical { continue }
            if check {
                print("\(file): not in canonical form")
                status = max(status, 1)
                continue
            }
            // Write beside the file and rename, so an interrupted run never leaves half a file.
            let temporary = file + ".smtptape-format"
            guard let handle = fopen(temporary, "wb") else {
                Standard.error("smtptape: \(file): cannot write: \(String(cString: strerror(errno)))")
                status = 2
                continue
            }
            var text = canonical
            let ok = text.withUTF8 { fwrite($0.baseAddress, 1, $0.count, handle) == $0.count }
            fclose(handle)
            if !ok || rename(temporary, file) != 0 {
                unlink(temporary)
                Standard.error("smtptape: \(file): cannot write")
                status = 2
                continue
            }
            print("\(file): rewritten")
        }
        if status != 0 { throw ExitCode(status) }
    }

    static func contents(_ path: String) -> String? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count == 0 { break }
            bytes += buffer[0..<count]
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
