import CSMTPScan
import SMTPCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A growable byte buffer written through a pointer.
///
/// Transcripts are built from many short appends (a tag, a time, a line); `Array.append` costs
/// around a hundred instructions per call in checks, which for JSON and text output was a
/// fifth of the run time. Here an append is a capacity compare and a `memcpy`.
public final class ByteWriter {
    /// The buffer's fields live behind a pointer: accesses to a class's stored properties are
    /// checked for exclusivity at run time, which on this path cost more than the appends.
    struct State {
        var base: UnsafeMutablePointer<UInt8>
        var count: Int
        var capacity: Int
    }

    private let state: UnsafeMutablePointer<State>

    public init(capacity: Int = 256) {
        let capacity = max(16, capacity)
        state = .allocate(capacity: 1)
        state.initialize(to: State(base: .allocate(capacity: capacity), count: 0, capacity: capacity))
    }

    deinit {
        state.pointee.base.deallocate()
        state.deinitialize(count: 1)
        state.deallocate()
    }

    public var count: Int { state.pointee.count }

    /// The bytes written so far (valid until the next write).
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: state.pointee.base, count: state.pointee.count) }

    public var isEmpty: Bool { state.pointee.count == 0 }

    public func removeAll() { state.pointee.count = 0 }

    /// Frees a large buffer once it is no longer needed (a session with a huge message).
    public func shrink(to limit: Int) {
        guard state.pointee.capacity > limit else { return }
        state.pointee.base.deallocate()
        state.pointee.base = .allocate(capacity: limit)
        state.pointee.capacity = limit
        state.pointee.count = 0
    }

    @inline(__always)
    func reserve(_ extra: Int) {
        if state.pointee.count + extra > state.pointee.capacity { grow(to: state.pointee.count + extra) }
    }

    @inline(never)
    private func grow(to needed: Int) {
        let newCapacity = max(state.pointee.capacity * 2, needed)
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.update(from: state.pointee.base, count: state.pointee.count)
        state.pointee.base.deallocate()
        state.pointee.base = newBase
        state.pointee.capacity = newCapacity
    }

    @inline(__always)
    public func append(_ byte: UInt8) {
        reserve(1)
        state.pointee.base[state.pointee.count] = byte
        state.pointee.count += 1
    }

    @inline(__always)
    public func append(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        reserve(bytes.count)
        memcpy(state.pointee.base + state.pointee.count, source, bytes.count)
        state.pointee.count += bytes.count
    }

    public func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    @inline(__always)
    public func append(_ text: StaticString) {
        append(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    public func append(_ string: String) {
        var string = string
        string.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    public func append(_ writer: ByteWriter) { append(writer.bytes) }

    public func appendDecimal(_ value: Int) {
        if value < 0 {
            append(0x2D)
            appendDecimal(-value)
            return
        }
        var digits = 1
        var rest = value / 10
        while rest > 0 { digits += 1; rest /= 10 }
        reserve(digits)
        var remaining = value
        let base = state.pointee.base, count = state.pointee.count
        for index in stride(from: count + digits - 1, through: count, by: -1) {
            base[index] = UInt8(0x30 + remaining % 10)
            remaining /= 10
        }
        state.pointee.count += digits
    }

    /// Standard base64 with padding (RFC 4648).
    public func appendBase64(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        reserve((bytes.count + 2) / 3 * 4)
        state.pointee.count += smtp_base64_encode(source, bytes.count, state.pointee.base + state.pointee.count)
    }

    /// `bytes` as the inside of a JSON string: escaped as RFC 8259 requires, valid UTF-8 kept,
    /// invalid bytes replaced with U+FFFD (the exact bytes are always in `raw`).
    public func appendJSONEscaped(_ bytes: UnsafeRawBufferPointer) {
        let total = bytes.count
        var index = 0
        let hex: StaticString = "0123456789abcdef"
        while index < total {
            var run = index
            while run < total, case let b = bytes[run], b >= 0x20, b < 0x80, b != 0x22, b != 0x5C { run += 1 }
            if run > index {
                append(UnsafeRawBufferPointer(rebasing: bytes[index..<run]))
                index = run
                if index == total { break }
            }
            let byte = bytes[index]
            switch byte {
            case 0x22, 0x5C:
                append(0x5C)
                append(byte)
                index += 1
            case 0x0A: append("\\n"); index += 1
            case 0x0D: append("\\r"); index += 1
            case 0x09: append("\\t"); index += 1
            case 0..<0x20:
                append("\\u00")
                append(hex.utf8Start[Int(byte >> 4)])
                append(hex.utf8Start[Int(byte & 0xF)])
                index += 1
            default:
                let length = UTF8Validation.sequenceLength(bytes, at: index)
                if length > 0 {
                    append(UnsafeRawBufferPointer(rebasing: bytes[index..<(index + length)]))
                    index += length
                } else {
                    append(UnsafeRawBufferPointer(start: UTF8Validation.replacementCharacter, count: 3))
                    index += 1
                }
            }
        }
    }
}

enum UTF8Validation {
    nonisolated(unsafe) static let replacementCharacter: UnsafeRawPointer = {
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: 3, alignment: 1)
        pointer.storeBytes(of: 0xEF, toByteOffset: 0, as: UInt8.self)
        pointer.storeBytes(of: 0xBF, toByteOffset: 1, as: UInt8.self)
        pointer.storeBytes(of: 0xBD, toByteOffset: 2, as: UInt8.self)
        return UnsafeRawPointer(pointer)
    }()

    /// The length of the valid UTF-8 sequence starting at `index`, or 0 if it is not valid.
    static func sequenceLength(_ bytes: UnsafeRawBufferPointer, at index: Int) -> Int {
        let lead = bytes[index]
        let length: Int
        let minimum: UInt32
        switch lead {
        case 0xC2...0xDF: length = 2; minimum = 0x80
        case 0xE0...0xEF: length = 3; minimum = 0x800
        case 0xF0...0xF4: length = 4; minimum = 0x10000
        default: return 0
        }
        guard index + length <= bytes.count else { return 0 }
        var scalar = UInt32(lead) & (length == 2 ? 0x1F : length == 3 ? 0x0F : 0x07)
        for offset in 1..<length {
            let next = bytes[index + offset]
            guard next & 0xC0 == 0x80 else { return 0 }
            scalar = scalar << 6 | UInt32(next & 0x3F)
        }
        guard scalar >= minimum, scalar <= 0x10FFFF, !(0xD800...0xDFFF).contains(scalar) else { return 0 }
        return length
    }
}

/// RFC 3339 times (`2026-11-29T01:27:53.123456Z`) written into a ``ByteWriter``. The text up to
/// the seconds changes once a second, so it is kept and only the fraction is written anew.
struct RFC3339Writer {
    var second = Int64.min
    var prefix: [UInt8] = []

    mutating func append(_ time: Timestamp, to out: ByteWriter) {
        let seconds = time.seconds
        if seconds != second {
            prefix.removeAll(keepingCapacity: true)
            Timestamp(seconds: seconds, nanoseconds: 0).appendRFC3339(to: &prefix)
            prefix.removeLast(8)  // ".000000Z"
            second = seconds
        }
        out.append(prefix)
        var micros = Int((time.nanoseconds - seconds * 1_000_000_000) / 1000)
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0x2E, 0, 0, 0, 0, 0, 0, 0x5A)
        withUnsafeMutableBytes(of: &digits) { bytes in
            for index in stride(from: 6, through: 1, by: -1) {
                bytes[index] = UInt8(0x30 + micros % 10)
                micros /= 10
            }
            out.append(UnsafeRawBufferPointer(bytes))
        }
    }
}
