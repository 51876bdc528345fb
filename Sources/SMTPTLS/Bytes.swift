// Small byte helpers: hex, and a bounds-checked big-endian reader over a slice.

public enum Hex {
    /// Decodes hex (either case). Whitespace is ignored so RFC-style "b3 ed db ..." works too.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count / 2)
        var high: UInt8? = nil
        for c in text.utf8 {
            let v: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c &- UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = c &- UInt8(ascii: "a") &+ 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): v = c &- UInt8(ascii: "A") &+ 10
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\t"), UInt8(ascii: "\r"): continue
            default: return nil
            }
            if let h = high { out.append(h << 4 | v); high = nil } else { high = v }
        }
        return high == nil ? out : nil
    }

    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var s: [UInt8] = []
        for b in bytes { s.append(digits[Int(b >> 4)]); s.append(digits[Int(b & 15)]) }
        return String(decoding: s, as: UTF8.self)
    }
}

public struct TLSParseError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ d: String) { description = d }
}

/// Big-endian reader over a slice; every read is bounds-checked and throws on truncation.
struct ByteReader {
    var bytes: ArraySlice<UInt8>
    init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }
    var isEmpty: Bool { bytes.isEmpty }
    var remaining: Int { bytes.count }

    mutating func u8() throws(TLSParseError) -> UInt8 {
        guard let b = bytes.first else { throw TLSParseError("truncated") }
        bytes = bytes.dropFirst()
        return b
    }
    mutating func u16() throws(TLSParseError) -> UInt16 { UInt16(try u8()) << 8 | UInt16(try u8()) }
    mutating func u24() throws(TLSParseError) -> Int { Int(try u8()) << 16 | Int(try u8()) << 8 | Int(try u8()) }
    mutating func take(_ n: Int) throws(TLSParseError) -> ArraySlice<UInt8> {
        guard n >= 0, bytes.count >= n else { throw TLSParseError("truncated") }
        let s = bytes.prefix(n)
        bytes = bytes.dropFirst(n)
        return s
    }
    mutating func vector8() throws(TLSParseError) -> ArraySlice<UInt8> { try take(Int(try u8())) }
    mutating func vector16() throws(TLSParseError) -> ArraySlice<UInt8> { try take(Int(try u16())) }
}
