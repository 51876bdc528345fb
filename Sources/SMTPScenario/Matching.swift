import SMTPCore

extension Scenario.Step {
    /// Whether a client line (its bytes, with or without line ending) meets this step's expectation.
    ///
    /// `exact` compares the verb without regard to case and the rest byte for byte, the secret
    /// placeholder standing for any credentials; `wildcard` takes `*` and `?`; `regex` must match
    /// the whole line; `any` takes anything.
    public func accepts(line: [UInt8]) -> Bool {
        let actual = Self.content(line)
        let expected = pattern.map { Array($0.utf8) } ?? Self.content(client)
        switch match {
        case .any:
            return true
        case .exact:
            if Self.contains(expected, Secrets.placeholderBytes) {
                return Wildcard.matches(pattern: Self.foldVerb(Self.placeholderAsWildcard(expected)), Self.foldVerb(actual), placeholderOnly: true)
            }
            return Self.foldVerb(expected) == Self.foldVerb(actual)
        case .wildcard:
            return Wildcard.matches(pattern: Self.foldVerb(expected), Self.foldVerb(actual), placeholderOnly: false)
        case .regex:
            guard let regex = try? Regex(String(decoding: expected, as: UTF8.self)) else { return false }
            return (try? regex.wholeMatch(in: String(decoding: actual, as: UTF8.self))) != nil
        }
    }

    /// Whether a message meets this step's expectation: byte for byte with `compare: exact`,
    /// otherwise with the values of Date and Message-ID headers and MIME boundaries set aside.
    public func accepts(message: [UInt8]) -> Bool {
        if compareExactly { return message == client }
        return MessageNormalizer.normalize(message) == MessageNormalizer.normalize(client)
    }

    static func content(_ line: [UInt8]) -> [UInt8] { SMTPLine.content(line) }

    /// The line with its verb (as ``SMTPCommand/verbEnd(_:)`` finds it) upper-cased.
    static func foldVerb(_ line: [UInt8]) -> [UInt8] {
        var bytes = line
        let end = line.withUnsafeBytes { SMTPCommand.verbEnd($0) }
        for index in 0..<end where (0x61...0x7A).contains(bytes[index]) { bytes[index] -= 0x20 }
        return bytes
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard needle.count <= haystack.count else { return false }
        return (0...(haystack.count - needle.count)).contains { Array(haystack[$0..<($0 + needle.count)]) == needle }
    }

    /// Marks each placeholder with a NUL, which ``Wildcard`` takes as "one or more bytes".
    static func placeholderAsWildcard(_ line: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var index = 0
        let token = Secrets.placeholderBytes
        while index < line.count {
            if index + token.count <= line.count, Array(line[index..<(index + token.count)]) == token {
                out.append(0)
                index += token.count
            } else {
                out.append(line[index])
                index += 1
            }
        }
        return out
    }
}

/// Glob matching on bytes: `*` any run, `?` one byte (or, with `placeholderOnly`, only NUL marks
/// are special and stand for one or more bytes).
enum Wildcard {
    static func matches(pattern: [UInt8], _ text: [UInt8], placeholderOnly: Bool) -> Bool {
        var p = 0, t = 0
        var starP = -1, starT = 0
        while t < text.count {
            if p < pattern.count {
                let symbol = pattern[p]
                let isStar = placeholderOnly ? symbol == 0 : symbol == 0x2A
                if isStar {
                    starP = p
                    starT = placeholderOnly ? t + 1 : t
                    p += 1
                    if placeholderOnly { t += 1 }
                    continue
                }
                if (!placeholderOnly && symbol == 0x3F) || symbol == text[t] {
                    p += 1
                    t += 1
                    continue
                }
            }
            if starP >= 0 {
                p = starP + 1
                starT += 1
                t = starT
                continue
            }
            return false
        }
        while p < pattern.count, pattern[p] == (placeholderOnly ? 0 : 0x2A) {
            if placeholderOnly { return false }  // a placeholder needs at least one byte
            p += 1
        }
        return p == pattern.count
    }
}

/// Sets aside what changes each time a client sends the same message: the values of the Date
/// and Message-ID headers and MIME boundary strings.
enum MessageNormalizer {
    static func normalize(_ message: [UInt8]) -> [UInt8] {
        var lines = split(message)
        var boundaries: [[UInt8]] = []
        var inHeader = true
        var index = 0
        while index < lines.count {
            let line = lines[index]
            if inHeader, line.isEmpty || line == [0x0D] { inHeader = false }
            let lower = line.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }
            if inHeader, hasPrefix(lower, "date:") || hasPrefix(lower, "message-id:") {
                let colon = line.firstIndex(of: 0x3A)!
                lines[index] = Array(line[...colon]) + Array(" *".utf8)
                // Folded continuation lines belong to the value.
                while index + 1 < lines.count, let first = lines[index + 1].first, first == 0x20 || first == 0x09 {
                    lines.remove(at: index + 1)
                }
            }
            if let range = find(lower, Array("boundary=".utf8)) {
                var value = Array(line[range.upperBound...])
                if value.first == 0x22, let close = value.dropFirst().firstIndex(of: 0x22) {
                    value = Array(value[1..<close])
                } else {
                    value = Array(value.prefix { $0 != 0x3B && $0 != 0x20 && $0 != 0x0D })
                }
                if !value.isEmpty { boundaries.append(value) }
            }
            index += 1
        }
        var joined: [UInt8] = lines.flatMap { line -> [UInt8] in line + [0x0A] }
        for boundary in boundaries {
            joined = replace(joined, boundary, with: Array("BOUNDARY".utf8))
        }
        return joined
    }

    static func split(_ bytes: [UInt8]) -> [[UInt8]] {
        bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init)
    }

    static func hasPrefix(_ bytes: [UInt8], _ prefix: String) -> Bool {
        bytes.starts(with: Array(prefix.utf8))
    }

    static func find(_ haystack: [UInt8], _ needle: [UInt8]) -> Range<Int>? {
        guard needle.count <= haystack.count else { return nil }
        for start in 0...(haystack.count - needle.count) where Array(haystack[start..<(start + needle.count)]) == needle {
            return start..<(start + needle.count)
        }
        return nil
    }

    static func replace(_ bytes: [UInt8], _ target: [UInt8], with replacement: [UInt8]) -> [UInt8] {
        guard !target.isEmpty else { return bytes }
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            if index + target.count <= bytes.count, Array(bytes[index..<(index + target.count)]) == target {
                out += replacement
                index += target.count
            } else {
                out.append(bytes[index])
                index += 1
            }
        }
        return out
    }
}
