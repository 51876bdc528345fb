/// The verbs smtptape knows (RFC 5321 section 4.1, RFC 4954, RFC 3207, RFC 3030).
/// Anything else is ``unknown`` and kept verbatim.
public enum SMTPVerb: Hashable, Sendable {
    case helo, ehlo, mail, rcpt, data, rset, noop, quit, vrfy, expn, help
    /// RFC 4954.
    case auth
    /// RFC 3207.
    case starttls
    /// RFC 3030.
    case bdat
    /// A verb this grammar does not know (e.g. `XCLIENT`, `LHLO`, `ETRN`), spelled as sent.
    case unknown(ByteString)

    /// Every known verb, in RFC order.
    public static let known: [SMTPVerb] = [.helo, .ehlo, .mail, .rcpt, .data, .rset, .noop, .quit, .vrfy, .expn, .help, .auth, .starttls, .bdat]

    /// The canonical, upper-case spelling.
    public var name: String {
        switch self {
        case .helo: "HELO"
        case .ehlo: "EHLO"
        case .mail: "MAIL"
        case .rcpt: "RCPT"
        case .data: "DATA"
        case .rset: "RSET"
        case .noop: "NOOP"
        case .quit: "QUIT"
        case .vrfy: "VRFY"
        case .expn: "EXPN"
        case .help: "HELP"
        case .auth: "AUTH"
        case .starttls: "STARTTLS"
        case .bdat: "BDAT"
        case .unknown(let verb): verb.description
        }
    }

    /// The verb's bytes: the canonical spelling, or an unknown verb exactly as sent.
    public var bytes: [UInt8] {
        if case .unknown(let verb) = self { return verb.bytes }
        return Array(name.utf8)
    }

    /// Recognises a verb from its bytes, ignoring ASCII case, without allocating for known verbs.
    public init(bytes: UnsafeRawBufferPointer) {
        switch bytes.count {
        case 4:
            let word = (UInt32(bytes[0].asciiUppercased) << 24) | (UInt32(bytes[1].asciiUppercased) << 16)
                | (UInt32(bytes[2].asciiUppercased) << 8) | UInt32(bytes[3].asciiUppercased)
            switch word {
            case 0x4845_4C4F: self = .helo
            case 0x4548_4C4F: self = .ehlo
            case 0x4D41_494C: self = .mail
            case 0x5243_5054: self = .rcpt
            case 0x4441_5441: self = .data
            case 0x5253_4554: self = .rset
            case 0x4E4F_4F50: self = .noop
            case 0x5155_4954: self = .quit
            case 0x5652_4659: self = .vrfy
            case 0x4558_504E: self = .expn
            case 0x4845_4C50: self = .help
            case 0x4155_5448: self = .auth
            case 0x4244_4154: self = .bdat
            default: self = .unknown(ByteString(bytes))
            }
        case 8 where asciiCaseInsensitiveEquals(bytes, "STARTTLS"):
            self = .starttls
        default:
            self = .unknown(ByteString(bytes))
        }
    }

    public init<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        let array = Array(bytes)
        self = array.withUnsafeBytes { SMTPVerb(bytes: $0) }
    }

}

/// One command line as the client sent it, split into verb and argument.
///
/// RFC 5321 4.1.1: `C: MAIL FROM:<alice@example.com> SIZE=1024`. The argument is kept as bytes;
/// typed views such as ``mailPath`` parse it on demand. ``encoded`` writes the canonical form.
public struct SMTPCommand: Hashable, Sendable, CustomStringConvertible {
    public var verb: SMTPVerb
    /// Everything after the verb and the separating space(s), without the line ending.
    public var argument: ByteString

    public init(verb: SMTPVerb, argument: ByteString = ByteString([UInt8]())) {
        self.verb = verb
        self.argument = argument
    }

    /// Parses one line, with or without its line ending. Never fails: a line that is not a
    /// command still has a first word, which becomes an ``SMTPVerb/unknown(_:)`` verb.
    public init(line: UnsafeRawBufferPointer) {
        var end = line.count
        while end > 0, line[end - 1] == 0x0A || line[end - 1] == 0x0D { end -= 1 }
        let verbEnd = Self.verbEnd(UnsafeRawBufferPointer(rebasing: line[0..<end]))
        // MAIL FROM / RCPT TO are two words; keep the verb the first word and the rest as argument.
        verb = SMTPVerb(bytes: UnsafeRawBufferPointer(rebasing: line[0..<verbEnd]))
        var argumentStart = verbEnd
        if argumentStart < end { argumentStart += 1 }  // exactly one separator belongs to the syntax
        argument = ByteString(UnsafeRawBufferPointer(rebasing: line[argumentStart..<end]))
    }

    /// Where the verb of a command line ends: at the first space or tab (tabs are not RFC 5321
    /// syntax, but some clients send them).
    @inline(__always)
    public static func verbEnd(_ content: UnsafeRawBufferPointer) -> Int {
        var end = 0
        while end < content.count, content[end] != 0x20, content[end] != 0x09 { end += 1 }
        return end
    }

    public init(line: [UInt8]) {
        self = line.withUnsafeBytes { SMTPCommand(line: $0) }
    }

    public init(_ line: String) {
        self.init(line: Array(line.utf8))
    }

    /// The canonical wire form, with CRLF: `VERB` or `VERB SP argument`.
    public var encoded: [UInt8] {
        var out = verb.bytes
        if !argument.isEmpty {
            out.append(0x20)
            out += argument.bytes
        }
        out += [0x0D, 0x0A]
        return out
    }

    public var description: String {
        argument.isEmpty ? verb.name : verb.name + " " + argument.description
    }

    // MARK: Typed views

    /// For `MAIL FROM:<path> params` and `RCPT TO:<path> params`: the path (without brackets)
    /// and the ESMTP parameters (RFC 5321 4.1.2, RFC 1870 SIZE, RFC 6531 SMTPUTF8).
    /// `nil` when the argument does not start with `FROM:` / `TO:` (case-insensitive).
    public var mailPath: MailPath? {
        let keyword: [UInt8]
        switch verb {
        case .mail: keyword = Array("FROM:".utf8)
        case .rcpt: keyword = Array("TO:".utf8)
        default: return nil
        }
        let bytes = argument.bytes
        guard bytes.count >= keyword.count,
              zip(bytes, keyword).allSatisfy({ $0.asciiUppercased == $1 }) else { return nil }
        return MailPath(parsing: bytes[keyword.count...])
    }

    /// For `BDAT size [LAST]`: the chunk size and whether it is the last chunk (RFC 3030).
    /// `nil` when the size is missing, not a decimal number, or too large to be real.
    public var binaryDataChunk: (size: Int, isLast: Bool)? {
        guard verb == .bdat else { return nil }
        let words = argument.bytes.split(separator: 0x20, omittingEmptySubsequences: true)
        guard let sizeWord = words.first, !sizeWord.isEmpty, sizeWord.count <= 15,
              sizeWord.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        let size = sizeWord.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        if words.count == 1 { return (size, false) }
        guard words.count == 2, words[1].count == 4,
              zip(words[1], Array("LAST".utf8)).allSatisfy({ $0.asciiUppercased == $1 }) else { return nil }
        return (size, true)
    }

    /// What the argument of `AUTH` holds (RFC 4954): `AUTH mechanism [initial-response]`.
    public enum AuthArgument: Hashable, Sendable {
        /// No argument at all.
        case none
        /// A mechanism (upper-cased) and where the initial response lies within ``argument``.
        case mechanism(String, initialResponse: Range<Int>?)
        /// The first word is not a SASL mechanism name: the whole argument may be a credential
        /// (`AUTH PLAIN\r\ndXNlcg...` sent with literal backslashes, say).
        case unreadable(Range<Int>)
    }

    /// The mechanism and credentials of an AUTH line. A mechanism is a SASL name (RFC 4422
    /// section 3.1: letters, digits, `-` and `_`, at most 20 characters); everything after it (past
    /// any run of spaces or tabs) is the initial response, a secret. An argument whose first word
    /// is not such a name is a secret as a whole: when in doubt, redact.
    public var authArgument: AuthArgument {
        guard verb == .auth else { return .none }
        let bytes = argument.bytes
        func isBlank(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }
        var start = 0
        while start < bytes.count, isBlank(bytes[start]) { start += 1 }
        var end = start
        while end < bytes.count, !isBlank(bytes[end]) { end += 1 }
        guard end > start else { return .none }
        let word = bytes[start..<end]
        let isSASLName = word.count <= 20 && word.allSatisfy { byte in
            (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || (0x30...0x39).contains(byte) || byte == 0x2D || byte == 0x5F
        }
        var responseEnd = bytes.count
        while responseEnd > start, isBlank(bytes[responseEnd - 1]) { responseEnd -= 1 }
        guard isSASLName else { return .unreadable(start..<responseEnd) }
        var responseStart = end
        while responseStart < bytes.count, isBlank(bytes[responseStart]) { responseStart += 1 }
        let name = String(decoding: word.map(\.asciiUppercased), as: UTF8.self)
        return .mechanism(name, initialResponse: responseStart < responseEnd ? responseStart..<responseEnd : nil)
    }

    /// For `AUTH mechanism [initial-response]`: the mechanism, upper-cased, or the secret
    /// placeholder when the argument does not start with a mechanism name.
    public var authMechanism: String? {
        switch authArgument {
        case .none: nil
        case .mechanism(let name, _): name
        case .unreadable: Secrets.placeholder
        }
    }

    /// Where the credentials of an AUTH line lie within ``argument``: the initial response, or
    /// the whole argument when it does not start with a mechanism name.
    public var authSecretRange: Range<Int>? {
        switch authArgument {
        case .none: nil
        case .mechanism(_, let response): response
        case .unreadable(let range): range
        }
    }
}

/// A reverse- or forward-path with ESMTP parameters: `<alice@example.com> SIZE=1234 BODY=8BITMIME`.
public struct MailPath: Hashable, Sendable {
    /// The mailbox between the angle brackets (empty for the null reverse-path `<>`).
    public var address: ByteString
    /// Whether the path was written inside angle brackets, as RFC 5321 requires.
    public var bracketed: Bool
    /// ESMTP parameters in the order sent; a keyword without `=value` has a `nil` value.
    public var parameters: [Parameter]

    public struct Parameter: Hashable, Sendable {
        public var keyword: String
        public var value: ByteString?
        public init(keyword: String, value: ByteString?) {
            self.keyword = keyword
            self.value = value
        }
    }

    public init(address: ByteString, bracketed: Bool = true, parameters: [Parameter] = []) {
        self.address = address
        self.bracketed = bracketed
        self.parameters = parameters
    }

    init<C: Collection>(parsing raw: C) where C.Element == UInt8 {
        let all = Array(raw)
        let (range, bracketed, rest) = all.withUnsafeBytes { Self.locate($0) }
        address = ByteString(all[range])
        self.bracketed = bracketed
        let bytes = all[rest...]
        parameters = bytes.split(separator: 0x20).map { word in
            if let equals = word.firstIndex(of: 0x3D) {
                return Parameter(keyword: String(decoding: word[..<equals].map(\.asciiUppercased), as: UTF8.self),
                                 value: ByteString(word[(equals + 1)...]))
            }
            return Parameter(keyword: String(decoding: word.map(\.asciiUppercased), as: UTF8.self), value: nil)
        }
    }

    /// Where the mailbox lies in the text after `FROM:`/`TO:`, whether it was in angle brackets,
    /// and where the parameters begin. Spaces before the path are skipped (`MAIL FROM: <a@b>` is
    /// common); a path without its closing `>` runs to the next space, unbracketed.
    static func locate(_ bytes: UnsafeRawBufferPointer) -> (address: Range<Int>, bracketed: Bool, rest: Int) {
        var start = 0
        while start < bytes.count, bytes[start] == 0x20 { start += 1 }
        if start < bytes.count, bytes[start] == 0x3C, let close = closingBracket(bytes, from: start) {
            return ((start + 1)..<close, true, close + 1)
        }
        var end = start
        while end < bytes.count, bytes[end] != 0x20 { end += 1 }
        return (start..<end, false, end)
    }

    /// The mailbox of a MAIL or RCPT line (its content, without the line ending), without building
    /// the parameters: what the dialogue needs for every command it reads. `nil` when the argument
    /// does not start with `FROM:` / `TO:`.
    public static func address(ofLine content: UnsafeRawBufferPointer, verb: SMTPVerb) -> (address: ByteString, bracketed: Bool)? {
        let keyword: StaticString
        switch verb {
        case .mail: keyword = "FROM:"
        case .rcpt: keyword = "TO:"
        default: return nil
        }
        var argument = SMTPCommand.verbEnd(content)
        if argument < content.count { argument += 1 }  // exactly one separator belongs to the syntax
        let length = keyword.utf8CodeUnitCount
        guard content.count - argument >= length,
              asciiCaseInsensitiveEquals(UnsafeRawBufferPointer(rebasing: content[argument..<(argument + length)]), keyword) else { return nil }
        let path = UnsafeRawBufferPointer(rebasing: content[(argument + length)...])
        let (range, bracketed, _) = locate(path)
        return (ByteString(UnsafeRawBufferPointer(rebasing: path[range])), bracketed)
    }

    /// The `>` that closes a path whose `<` is at `from`, skipping quoted strings
    /// (`<"a>b"@example.com>`, RFC 5321 4.1.2 Quoted-string, with backslash escapes).
    static func closingBracket(_ bytes: UnsafeRawBufferPointer, from: Int) -> Int? {
        var quoted = false
        var index = from + 1
        while index < bytes.count {
            switch bytes[index] {
            case 0x5C where quoted: index += 1
            case 0x22: quoted.toggle()
            case 0x3E where !quoted: return index
            default: break
            }
            index += 1
        }
        return nil
    }

    /// The value of a parameter, by keyword (case-insensitive).
    public func parameter(_ keyword: String) -> ByteString?? {
        let upper = keyword.uppercased()
        return parameters.first { $0.keyword == upper }.map(\.value)
    }

    /// `<address> KEY=VALUE ...`, as it goes after `FROM:` or `TO:`.
    public var encoded: [UInt8] {
        var out: [UInt8] = bracketed ? [0x3C] + address.bytes + [0x3E] : address.bytes
        for parameter in parameters {
            out.append(0x20)
            out += Array(parameter.keyword.utf8)
            if let value = parameter.value {
                out.append(0x3D)
                out += value.bytes
            }
        }
        return out
    }
}

extension SMTPCommand {
    /// `MAIL FROM:<path> params` (RFC 5321 4.1.1.2).
    public static func mail(from path: MailPath) -> SMTPCommand {
        SMTPCommand(verb: .mail, argument: ByteString(Array("FROM:".utf8) + path.encoded))
    }

    /// `RCPT TO:<path> params` (RFC 5321 4.1.1.3).
    public static func rcpt(to path: MailPath) -> SMTPCommand {
        SMTPCommand(verb: .rcpt, argument: ByteString(Array("TO:".utf8) + path.encoded))
    }

    /// `BDAT size [LAST]` (RFC 3030).
    public static func bdat(size: Int, last: Bool) -> SMTPCommand {
        SMTPCommand(verb: .bdat, argument: ByteString(String(size) + (last ? " LAST" : "")))
    }
}
