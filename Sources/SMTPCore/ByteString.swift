/// Bytes from the wire that are usually, but not always, text.
///
/// SMTP is 8-bit in practice (SMTPUTF8, broken clients, binary junk), so smtptape never
/// forces arguments through `String`: the bytes are kept, and ``description`` shows them
/// with non-printable and non-UTF-8 bytes escaped as `\xNN`.
public struct ByteString: Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    public var bytes: [UInt8]

    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public init<S: Sequence>(_ bytes: S) where S.Element == UInt8 { self.bytes = Array(bytes) }
    public init(_ string: String) { self.bytes = Array(string.utf8) }
    public init(stringLiteral value: String) { self.init(value) }

    public var isEmpty: Bool { bytes.isEmpty }
    public var count: Int { bytes.count }

    /// The bytes as a string if they are valid UTF-8.
    public var string: String? { String(validating: bytes, as: UTF8.self) }

    /// A readable, lossless-to-the-eye rendering: printable UTF-8 kept, everything else `\xNN`.
    public var description: String { ByteString.escaped(bytes) }

    /// Renders bytes for people: valid UTF-8 printable text as is, control and invalid bytes as `\xNN`,
    /// tabs kept.
    public static func escaped<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        let buffer = Array(bytes)
        var out = ""
        out.reserveCapacity(buffer.count)
        var index = 0
        while index < buffer.count {
            let byte = buffer[index]
            if byte < 0x80 {
                if byte == 0x09 || (byte >= 0x20 && byte < 0x7F) {
                    out.unicodeScalars.append(Unicode.Scalar(byte))
                } else {
                    out += hexEscape(byte)
                }
                index += 1
                continue
            }
            // A multi-byte scalar is kept when it is valid UTF-8; otherwise its first byte is escaped.
            let length = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1
            // C1 controls (U+0080-U+009F, `C2 80`-`C2 9F`) are escaped: terminals act on them.
            if length > 1, index + length <= buffer.count, !(byte == 0xC2 && buffer[index + 1] < 0xA0),
               let scalar = String(validating: buffer[index..<index + length], as: UTF8.self) {
                out += scalar
                index += length
            } else {
                out += hexEscape(byte)
                index += 1
            }
        }
        return out
    }

    /// `\\xNN` for one byte.
    public static func hexEscape(_ byte: UInt8) -> String {
        let digits: [Character] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "A", "B", "C", "D", "E", "F"]
        return "\\x" + String(digits[Int(byte >> 4)]) + String(digits[Int(byte & 0xF)])
    }
}

extension UInt8 {
    /// ASCII upper-casing by clearing bit 5, valid for letters only.
    @inline(__always) var asciiUppercased: UInt8 { (self >= 0x61 && self <= 0x7A) ? self & 0xDF : self }
}

/// Compares `bytes` against an upper-case ASCII word, ignoring ASCII case.
@inline(__always)
func asciiCaseInsensitiveEquals(_ bytes: UnsafeRawBufferPointer, _ upperWord: StaticString) -> Bool {
    guard bytes.count == upperWord.utf8CodeUnitCount else { return false }
    let word = upperWord.utf8Start
    for i in 0..<bytes.count where bytes[i].asciiUppercased != word[i] {
        return false
    }
    return true
}
