import Foundation

/// A client's own record of an SMTP dialogue, read from the logs in `Captures/`:
/// swaks (` -> ` / `<-  `), python smtplib at debuglevel 1 (`send:` / `reply:`), curl -v
/// (`> ` / `< `) and msmtp --debug (`--> ` / `<-- `). Lines under TLS (swaks `~>`, `<~`) are kept
/// apart, since a capture cannot read them.
struct ClientLog {
    enum Line: Equatable, CustomStringConvertible {
        case client(String)
        case server(String)
        var description: String {
            switch self {
            case .client(let text): "C: " + text
            case .server(let text): "S: " + text
            }
        }
    }

    var lines: [Line] = []
    var encryptedLines = 0
    let decrypted: Bool
    /// Whether the client logs message data line by line (curl shows only a byte count).
    var logsMessageData = true

    /// Whether the log shows only the server's lines (`openssl s_client` prints what it receives).
    var serverOnly = false

    /// - Parameter decrypted: lines the client logged under TLS are part of the dialogue (the
    ///   capture is read with its key log).
    init(contentsOf url: URL, decrypted: Bool = false) throws {
        self.decrypted = decrypted
        // Split on LF bytes: as a String, "\r\n" is one Character and would not split on "\n".
        let text = try Data(contentsOf: url).split(separator: 0x0A, omittingEmptySubsequences: false)
            .map { Substring(String(decoding: $0, as: UTF8.self)) }
        let name = url.lastPathComponent
        if name.hasPrefix("swaks") { parseSwaks(text) }
        else if name.hasPrefix("smtplib") { parseSmtplib(text) }
        else if name.hasPrefix("curl") { parseCurl(text); logsMessageData = false }
        else if name.hasPrefix("msmtp") { parseMsmtp(text) }
        else if name.hasPrefix("openssl") { parseOpenSSL(text); serverOnly = true; logsMessageData = false }
    }

    /// `openssl s_client`: its session report, then the server's lines as they came.
    mutating func parseOpenSSL(_ text: [Substring]) {
        for raw in text {
            let line = Self.trimCR(raw)
            let bytes = Array(line.utf8)
            if bytes.count >= 4, bytes[0...2].allSatisfy({ (0x30...0x39).contains($0) }), bytes[3] == 0x20 || bytes[3] == 0x2D {
                lines.append(.server(line))
            }
        }
    }

    static func trimCR(_ s: Substring) -> String { s.hasSuffix("\r") ? String(s.dropLast()) : String(s) }

    mutating func parseSwaks(_ text: [Substring]) {
        for raw in text {
            if raw.hasPrefix(" -> ") { lines.append(.client(Self.trimCR(raw.dropFirst(4)))) }
            else if raw.hasPrefix("<-  ") || raw.hasPrefix("<** ") { lines.append(.server(Self.trimCR(raw.dropFirst(4)))) }
            else if decrypted, raw.hasPrefix(" ~> ") { lines.append(.client(Self.trimCR(raw.dropFirst(4)))) }
            else if decrypted, raw.hasPrefix("<~  ") || raw.hasPrefix("<~* ") { lines.append(.server(Self.trimCR(raw.dropFirst(4)))) }
            else if raw.hasPrefix(" ~> ") || raw.hasPrefix("<~  ") || raw.hasPrefix("<~* ") { encryptedLines += 1 }
        }
    }

    mutating func parseCurl(_ text: [Substring]) {
        for raw in text {
            if raw.hasPrefix("> ") { lines.append(.client(Self.trimCR(raw.dropFirst(2)))) }
            else if raw.hasPrefix("< ") { lines.append(.server(Self.trimCR(raw.dropFirst(2)))) }
        }
    }

    mutating func parseMsmtp(_ text: [Substring]) {
        for raw in text {
            if raw.hasPrefix("--> ") { lines.append(.client(Self.trimCR(raw.dropFirst(4)))) }
            else if raw.hasPrefix("<-- ") { lines.append(.server(Self.trimCR(raw.dropFirst(4)))) }
        }
    }

    mutating func parseSmtplib(_ text: [Substring]) {
        for raw in text {
            if raw.hasPrefix("send: ") {
                let bytes = Self.pythonLiteral(raw.dropFirst(6))
                // One send may hold several lines (the whole message for DATA).
                for line in Self.splitLines(bytes) { lines.append(.client(line)) }
            } else if raw.hasPrefix("reply: b") {
                for line in Self.splitLines(Self.pythonLiteral(raw.dropFirst(7))) { lines.append(.server(line)) }
            }
        }
    }

    static func splitLines(_ bytes: [UInt8]) -> [String] {
        var result: [String] = []
        var current: [UInt8] = []
        for byte in bytes {
            if byte == 0x0A {
                if current.last == 0x0D { current.removeLast() }
                result.append(String(decoding: current, as: UTF8.self))
                current = []
            } else {
                current.append(byte)
            }
        }
        if !current.isEmpty { result.append(String(decoding: current, as: UTF8.self)) }
        return result
    }

    /// Decodes a Python `str` or `bytes` repr: `'...'` or `b'...'` with `\r \n \t \\ \' \xNN`.
    static func pythonLiteral(_ literal: Substring) -> [UInt8] {
        var text = literal
        let isBytes = text.hasPrefix("b")
        if isBytes { text = text.dropFirst() }
        guard let quote = text.first else { return [] }
        text = text.dropFirst()
        if text.last == quote { text = text.dropLast() }
        var out: [UInt8] = []
        var scalars = Array(text.unicodeScalars)[...]
        while let scalar = scalars.popFirst() {
            guard scalar == "\\", let escape = scalars.popFirst() else {
                out += Array(String(scalar).utf8)
                continue
            }
            switch escape {
            case "r": out.append(0x0D)
            case "n": out.append(0x0A)
            case "t": out.append(0x09)
            case "x":
                let hex = String(String.UnicodeScalarView(scalars.prefix(2)))
                scalars = scalars.dropFirst(2)
                let value = UInt8(hex, radix: 16) ?? 0
                // In a str repr \xNN is a code point; in bytes a byte.
                out += isBytes ? [value] : Array(String(UnicodeScalar(value)).utf8)
            default: out += Array(String(escape).utf8)
            }
        }
        return out
    }
}
