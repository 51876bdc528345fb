// The NSS key log format (SSLKEYLOGFILE, RFC 9850) and the pcapng Decryption Secrets Block.
import Foundation

/// TLS secrets by client random, as written by curl, Firefox and Thunderbird (`SSLKEYLOGFILE`),
/// OpenSSL's keylog callback, Python's `keylog_filename` and Go's `KeyLogWriter`.
///
/// A line is `LABEL CLIENT_RANDOM SECRET` (hex); lines end with LF, CRLF or CR. Empty lines,
/// comments (`#`) and labels not needed for decryption are skipped; a line that is not of that
/// shape, or whose random or secret is not hex of the right length, is a warning with its number.
public struct KeyLog: Sendable {
    public enum Label: String, Sendable, CaseIterable {
        /// TLS 1.2 and below: the 48-byte master secret.
        case clientRandom = "CLIENT_RANDOM"
        case clientEarlyTrafficSecret = "CLIENT_EARLY_TRAFFIC_SECRET"
        case clientHandshakeTrafficSecret = "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
        case serverHandshakeTrafficSecret = "SERVER_HANDSHAKE_TRAFFIC_SECRET"
        case clientTrafficSecret0 = "CLIENT_TRAFFIC_SECRET_0"
        case serverTrafficSecret0 = "SERVER_TRAFFIC_SECRET_0"
    }

    /// client_random (32 bytes) → label → secret. A later line wins.
    public private(set) var secrets: [[UInt8]: [Label: [UInt8]]] = [:]
    /// One line per malformed line: `NAME:LINE: what is wrong`.
    public internal(set) var warnings: [String] = []
    /// Lines read so far (for numbering lines added later from the same file).
    var linesRead = 0

    public init() {}

    public init(text: some StringProtocol, name: String = "key log") {
        add(Array(text.utf8), name: name)
    }

    public var isEmpty: Bool { secrets.isEmpty }

    /// Adds the lines of `bytes` (whole lines only: a caller reading a growing file passes what
    /// ends in a line break and keeps the rest).
    public mutating func add(_ bytes: [UInt8], name: String) {
        var lineStart = 0
        var index = 0
        while index <= bytes.count {
            let atEnd = index == bytes.count
            let byte: UInt8 = atEnd ? 0x0A : bytes[index]
            if byte == 0x0A || byte == 0x0D {
                if !(atEnd && lineStart == index) {
                    linesRead += 1
                    addLine(bytes[lineStart..<index], number: linesRead, name: name)
                }
                // CRLF is one line ending.
                if byte == 0x0D, index + 1 < bytes.count, bytes[index + 1] == 0x0A { index += 1 }
                lineStart = index + 1
            }
            index += 1
        }
    }

    mutating func addLine(_ line: ArraySlice<UInt8>, number: Int, name: String) {
        let text = String(decoding: line, as: UTF8.self)
        let trimmed = text.drop { $0 == " " || $0 == "\t" }
        if trimmed.isEmpty || trimmed.first == "#" { return }
        let fields = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count == 3 else {
            warn(name, number, "not a key log line (expected LABEL CLIENT_RANDOM SECRET)")
            return
        }
        // Labels not needed to read records are skipped: exporters, ECH, NSS's old `RSA` lines,
        // OpenSSL's `*_TRAFFIC_SECRET_N` after a KeyUpdate (the decryptor derives those itself).
        guard let label = Label(rawValue: String(fields[0])) else { return }
        guard fields[1].utf8.count == 64, let random = Hex.decode(fields[1]) else {
            warn(name, number, "\(label.rawValue): the client random is not 32 bytes of hex")
            return
        }
        guard let secret = Hex.decode(fields[2]), label == .clientRandom ? secret.count == 48 : (secret.count == 32 || secret.count == 48) else {
            warn(name, number, "\(label.rawValue): the secret is not hex of the right length (\(label == .clientRandom ? "48 bytes" : "32 or 48 bytes"))")
            return
        }
        secrets[random, default: [:]][label] = secret
    }

    /// Malformed lines warned about, and more skipped without a word (a binary file given by
    /// mistake would otherwise fill the screen).
    var malformed = 0
    static let warningLimit = 5

    mutating func warn(_ name: String, _ number: Int, _ message: String) {
        malformed += 1
        if malformed <= Self.warningLimit {
            warnings.append("\(name):\(number): \(message); line skipped")
        }
    }

    /// The warnings, ended by a count of the malformed lines not shown.
    mutating func takeWarnings() -> [String] {
        var lines = warnings
        if malformed > Self.warningLimit, let name = warnings.last?.split(separator: ":").first {
            lines.append("\(name): \(malformed - Self.warningLimit) more malformed line(s) skipped")
        }
        warnings.removeAll()
        malformed = 0
        return lines
    }

    public func secret(_ label: Label, clientRandom: [UInt8]) -> [UInt8]? {
        secrets[clientRandom]?[label]
    }

    /// Adds every secret of `other` (the pcapng blocks of a capture).
    public mutating func merge(_ other: KeyLog) {
        for (random, labels) in other.secrets {
            secrets[random, default: [:]].merge(labels) { _, new in new }
        }
        warnings += other.warnings
        malformed += other.malformed
    }
}

/// Where decryptors look up secrets: key log files given on the command line (read again as they
/// grow, for live captures) and the secrets embedded in captures.
public final class KeyLogStore: @unchecked Sendable {
    struct Source {
        var path: String
        var offset: Int
        var partial: [UInt8] = []
    }

    var log = KeyLog()
    var sources: [Source] = []
    /// Whether files are read again when a client random is missing (a live capture, where the
    /// client writes its secrets while the capture runs).
    public var followsFiles = false

    public init() {}

    /// Reads a key log file. Throws a one-line message when it cannot be read, except while
    /// ``followsFiles``: then a file that does not exist yet is read once a client creates it.
    public func add(file path: String) throws(KeyLogError) {
        var source = Source(path: path, offset: 0)
        if !(followsFiles && !FileManager.default.fileExists(atPath: path)) {
            try read(&source)
        }
        sources.append(source)
    }

    public func add(_ other: KeyLog) { log.merge(other) }

    /// Warnings about malformed lines so far (each once).
    public func takeWarnings() -> [String] { log.takeWarnings() }

    public var isEmpty: Bool { log.isEmpty && sources.isEmpty }

    /// The secrets logged for a client random, reading the files again if they grew.
    public func secrets(for random: [UInt8]) -> [KeyLog.Label: [UInt8]]? {
        if let found = log.secrets[random] { return found }
        guard followsFiles else { return nil }
        refresh()
        return log.secrets[random]
    }

    public func secret(_ label: KeyLog.Label, clientRandom: [UInt8]) -> [UInt8]? {
        if let found = log.secret(label, clientRandom: clientRandom) { return found }
        guard followsFiles else { return nil }
        refresh()
        return log.secret(label, clientRandom: clientRandom)
    }

    /// Reads what was appended to the files.
    public func refresh() {
        for index in sources.indices {
            try? read(&sources[index])
        }
    }

    func read(_ source: inout Source) throws(KeyLogError) {
        let handle: FileHandle
        do {
            handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: source.path))
        } catch {
            throw KeyLogError(message: "\(source.path): cannot read the key log (\(Self.reason(error)))")
        }
        defer { try? handle.close() }
        let data: Data
        do {
            try handle.seek(toOffset: UInt64(source.offset))
            data = try handle.readToEnd() ?? Data()
        } catch {
            throw KeyLogError(message: "\(source.path): cannot read the key log (\(Self.reason(error)))")
        }
        guard !data.isEmpty else { return }
        source.offset += data.count
        var bytes = source.partial + data
        // Only whole lines: the writer may be in the middle of one.
        if followsFiles, let last = bytes.lastIndex(where: { $0 == 0x0A || $0 == 0x0D }) {
            source.partial = Array(bytes[(last + 1)...])
            bytes.removeSubrange((last + 1)...)
        } else if followsFiles {
            source.partial = bytes
            return
        } else {
            source.partial = []
        }
        log.add(bytes, name: source.path)
    }

    static func reason(_ error: any Error) -> String {
        let nsError = error as NSError
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain,
           let message = strerror(Int32(underlying.code)) {
            return String(cString: message)
        }
        if nsError.domain == NSCocoaErrorDomain, nsError.code == NSFileReadNoSuchFileError || nsError.code == NSFileNoSuchFileError {
            return "No such file or directory"
        }
        return nsError.localizedDescription
    }
}

public struct KeyLogError: Error, Sendable {
    public var message: String
}

/// pcapng Decryption Secrets Blocks (block type 0x0000000A, `editcap --inject-secrets`):
///
///     Block Type | Block Total Length | Secrets Type | Secrets Length |
///     Secrets Data (zero-padded to 32 bits) | Options | Block Total Length
///
/// Integers are in the section's byte order. Only TLS key logs (`TLSK`) are read.
public enum PcapngSecrets {
    static let blockType: UInt32 = 0x0000_000A
    static let tlsKeyLog: UInt32 = 0x544C_534B
    static let sectionHeader: UInt32 = 0x0A0D_0D0A

    /// Walks the blocks of a pcapng file (reading only their headers, and the bodies of secrets
    /// blocks) and returns the key logs it embeds. A file that is not pcapng, or that is damaged,
    /// gives what was found before the damage (the capture reader reports the damage itself).
    public static func keyLogs(inFile path: String) -> [[UInt8]] {
        guard let handle = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? handle.close() }
        var result: [[UInt8]] = []
        var offset: UInt64 = 0
        var bigEndian = false
        func read(_ count: Int, at position: UInt64) -> [UInt8]? {
            guard (try? handle.seek(toOffset: position)) != nil,
                  let data = try? handle.read(upToCount: count), data.count == count else { return nil }
            return [UInt8](data)
        }
        func u32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
            let b = (UInt32(bytes[at]), UInt32(bytes[at + 1]), UInt32(bytes[at + 2]), UInt32(bytes[at + 3]))
            return bigEndian ? b.0 << 24 | b.1 << 16 | b.2 << 8 | b.3 : b.3 << 24 | b.2 << 16 | b.1 << 8 | b.0
        }
        while let header = read(12, at: offset) {
            let type = u32(header, 0)
            if offset == 0, type != sectionHeader { return [] }
            if type == sectionHeader {
                bigEndian = false
                if u32(header, 8) != 0x1A2B_3C4D {
                    bigEndian = true
                    guard u32(header, 8) == 0x1A2B_3C4D else { return result }
                }
            }
            let length = UInt64(u32(header, 4))
            guard length >= 12, length % 4 == 0 else { return result }
            if type == blockType, length >= 20, let body = read(8, at: offset + 8), u32(body, 0) == tlsKeyLog {
                let secretsLength = Int(u32(body, 4))
                guard 16 + UInt64(secretsLength) + 4 <= length, let secrets = read(secretsLength, at: offset + 16) else { return result }
                result.append(secrets)
            }
            offset += length
        }
        return result
    }
}
