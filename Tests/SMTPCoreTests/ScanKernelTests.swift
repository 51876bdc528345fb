import CSMTPScan
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The C kernels in `CSMTPScan`: every implementation of the "\n." scan held to a naive Swift
/// reference at every length and alignment, never reading a byte outside its buffer; base64
/// held to Foundation's.
@Suite struct ScanKernelTests {
    /// One implementation of `smtp_find_newline_dot`.
    struct Kernel: Sendable, CustomTestStringConvertible {
        let name: String
        let find: @Sendable (UnsafeRawPointer, Int) -> UnsafeRawPointer?
        var testDescription: String { name }

        /// Every implementation this machine can run: scalar and SSE2 always (SSE2 is the scalar
        /// loop on builds without it), AVX2 where the CPU has it, and the dispatching function.
        static var available: [Kernel] {
            var kernels = [
                Kernel(name: "scalar") { smtp_find_newline_dot_scalar($0, $1) },
                Kernel(name: "sse2") { smtp_find_newline_dot_sse2($0, $1) },
            ]
            if smtp_cpu_has_avx2() == 1 {
                kernels.append(Kernel(name: "avx2") { smtp_find_newline_dot_avx2($0, $1) })
            }
            kernels.append(Kernel(name: "dispatch") { smtp_find_newline_dot($0, $1) })
            return kernels
        }
    }

    /// The answer, one byte at a time: the offset of the first "\n.", or nil.
    static func reference(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard bytes.count >= 2 else { return nil }
        for index in 0..<(bytes.count - 1) where bytes[index] == 0x0A && bytes[index + 1] == 0x2E {
            return index
        }
        return nil
    }

    /// How a test buffer is filled. Random bytes are mostly any of the 256 values, with LF and
    /// "." one in sixteen each, so that near misses (".\n", "\n\n", "\nx") are everywhere.
    enum Fill: CaseIterable {
        /// Random bytes with every "\n." taken out.
        case none
        /// As `none`, ending in LF (a kernel reading one byte past the end finds the "." put there).
        case noneEndingInLF
        /// As `none`, with one "\n." at a random position.
        case oneAtRandom
        /// As `none`, with "\n." as the last two bytes.
        case atTheEnd
        /// Random bytes as they come: none, one or several.
        case random

        /// 64 KiB of such random bytes, made once; buffers are copied from it at random offsets.
        static let pool: [UInt8] = {
            var random = SplitMix64(seed: 0x9001)
            return (0..<(1 << 16)).map { _ in
                switch random.next() & 15 {
                case 0: 0x0A
                case 1: 0x2E
                default: UInt8(truncatingIfNeeded: random.next())
                }
            }
        }()

        func apply(to buffer: UnsafeMutableRawBufferPointer, _ random: inout SplitMix64) {
            let count = buffer.count
            let from = Int(random.next() % UInt64(Self.pool.count - count + 1))
            Self.pool.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[from..<(from + count)])) }
            if self == .random { return }
            if count >= 2 {
                for index in 1..<count where buffer[index - 1] == 0x0A && buffer[index] == 0x2E { buffer[index] = 0x41 }
            }
            switch self {
            case .noneEndingInLF where count >= 1:
                buffer[count - 1] = 0x0A
            case .oneAtRandom where count >= 2:
                let at = Int(random.next() % UInt64(count - 1))
                buffer[at] = 0x0A
                buffer[at + 1] = 0x2E
            case .atTheEnd where count >= 2:
                buffer[count - 2] = 0x0A
                buffer[count - 1] = 0x2E
            default:
                break
            }
        }
    }

    /// Runs `kernel` on `buffer` and describes the difference from `expected`, if any.
    static func mismatch(_ kernel: Kernel, _ buffer: UnsafeRawBufferPointer, expected: Int?, _ what: @autoclosure () -> String) -> String? {
        let base = buffer.baseAddress!
        let found = kernel.find(base, buffer.count).map { base.distance(to: $0) }
        guard found != expected else { return nil }
        return "\(kernel.name), \(what()): expected \(expected.map(String.init) ?? "none"), got \(found.map(String.init) ?? "none")"
    }

    static func report(_ failures: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(failures.isEmpty, "\(failures.count) mismatches, first: \(failures.prefix(5).joined(separator: "; "))", sourceLocation: sourceLocation)
    }

    /// Every available kernel on the same buffers (each filled and answered by the reference
    /// once): 301 lengths x 64 alignments x 5 fills.
    @Test func everyKernelAgreesWithTheReferenceAtEveryLengthAndAlignment() {
        let kernels = Kernel.available
        // 64 bytes of room before the buffer for the alignment, and one after it for the bait.
        let storage = UnsafeMutableRawPointer.allocate(byteCount: 64 + 64 + 300 + 64, alignment: 64)
        defer { storage.deallocate() }
        var random = SplitMix64(seed: 0x5CA1_AB1E)
        var failures: [String] = []
        var matches = 0
        for length in 0...300 {
            for alignment in 0...63 {
                let start = storage + 64 + alignment
                // Bait on both sides: a kernel that reads the byte before the buffer sees "\n"
                // before a leading "."; one that reads the byte after it sees "." after a final "\n".
                start.storeBytes(of: 0x0A, toByteOffset: -1, as: UInt8.self)
                start.storeBytes(of: 0x2E, toByteOffset: length, as: UInt8.self)
                let buffer = UnsafeMutableRawBufferPointer(start: start, count: length)
                for fill in Fill.allCases {
                    fill.apply(to: buffer, &random)
                    let expected = Self.reference(UnsafeRawBufferPointer(buffer))
                    if expected != nil { matches += 1 }
                    for kernel in kernels {
                        if let failure = Self.mismatch(kernel, UnsafeRawBufferPointer(buffer), expected: expected, "length \(length), alignment \(alignment), \(fill)") {
                            failures.append(failure)
                        }
                    }
                }
            }
        }
        Self.report(failures)
        // The fills did what they are for: about half of the buffers hold "\n.", half do not.
        #expect(matches > 301 * 64 * 2 && matches < 301 * 64 * 4)
    }

    /// Which kernels ran: scalar, SSE2 and the dispatcher everywhere, AVX2 where the CPU has it.
    @Test func theKernelsTested() {
        let names = Kernel.available.map(\.name)
        #expect(names == ["scalar", "sse2"] + (smtp_cpu_has_avx2() == 1 ? ["avx2"] : []) + ["dispatch"])
    }

    /// Three pages: the middle one readable, the others not, so that reading even one byte
    /// before a buffer placed at the middle page's start, or after one placed at its end,
    /// stops the test process with SIGSEGV.
    final class GuardedPage {
        let region: UnsafeMutableRawPointer
        let pageSize: Int

        init() throws {
            pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
            let mapped = mmap(nil, 3 * pageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            guard let mapped, mapped != MAP_FAILED else { throw POSIXError(.ENOMEM) }
            region = mapped
            guard mprotect(region, pageSize, PROT_NONE) == 0, mprotect(region + 2 * pageSize, pageSize, PROT_NONE) == 0 else {
                throw POSIXError(.EPERM)
            }
        }

        deinit { munmap(region, 3 * pageSize) }

        /// `count` bytes ending at the last readable byte.
        func atEnd(_ count: Int) -> UnsafeMutableRawBufferPointer {
            UnsafeMutableRawBufferPointer(start: region + 2 * pageSize - count, count: count)
        }

        /// `count` bytes starting at the first readable byte.
        func atStart(_ count: Int) -> UnsafeMutableRawBufferPointer {
            UnsafeMutableRawBufferPointer(start: region + pageSize, count: count)
        }
    }

    @Test(arguments: Kernel.available)
    func readsNoByteOutsideTheBuffer(_ kernel: Kernel) throws {
        let page = try GuardedPage()
        var random = SplitMix64(seed: 0x0BAD_F00D)
        var failures: [String] = []
        for length in 0...300 {
            for (place, buffer) in [("at the end of a page", page.atEnd(length)), ("at the start of a page", page.atStart(length))] {
                for fill in Fill.allCases {
                    fill.apply(to: buffer, &random)
                    let expected = Self.reference(UnsafeRawBufferPointer(buffer))
                    if let failure = Self.mismatch(kernel, UnsafeRawBufferPointer(buffer), expected: expected, "length \(length) \(place), \(fill)") {
                        failures.append(failure)
                    }
                }
            }
        }
        Self.report(failures)
    }

    /// The run-time check agrees with what the kernel says about the CPU.
    @Test func avx2DetectionAgreesWithTheCPU() throws {
        #if os(Linux) && arch(x86_64)
        let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let flags = cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") }.map { $0.split(separator: " ").map(String.init) } ?? []
        #expect(smtp_cpu_has_avx2() == (flags.contains("avx2") ? 1 : 0))
        #expect(smtp_has_sse2() == 1, "x86-64 always has SSE2")
        #endif
    }

    // MARK: Base64

    static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8](repeating: 0, count: (bytes.count + 2) / 3 * 4)
        let written = bytes.withUnsafeBytes { input in out.withUnsafeMutableBytes { smtp_base64_encode(input.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, bytes.count, $0.baseAddress!) } }
        #expect(written == out.count)
        return String(decoding: out, as: UTF8.self)
    }

    /// The decoded bytes, or nil when the kernel says -1.
    static func decode(_ text: [UInt8]) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: text.count / 4 * 3 + 3)
        let written = text.withUnsafeBytes { input in out.withUnsafeMutableBytes { smtp_base64_decode(input.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, text.count, $0.baseAddress!) } }
        guard written >= 0 else { return nil }
        return Array(out.prefix(written))
    }

    @Test func base64AgreesWithFoundation() {
        var random = SplitMix64(seed: 0xBA5E_0064)
        var failures: [String] = []
        for length in Array(0...300) + (0..<50).map({ _ in Int(random.next() % 5000) }) {
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            let foundation = Data(bytes).base64EncodedString()
            if Self.encode(bytes) != foundation { failures.append("encode, length \(length)") }
            if Self.decode(Array(foundation.utf8)) != bytes { failures.append("decode, length \(length)") }
            // Line breaks as MIME writes them, and blanks, are skipped.
            let wrapped = Data(bytes).base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed])
            if Self.decode(Array(wrapped.utf8)) != bytes { failures.append("decode of CRLF-wrapped text, length \(length)") }
            let spaced = foundation.enumerated().map { $0.offset % 7 == 6 ? " \($0.element)\t" : String($0.element) }.joined() + "\n"
            if Self.decode(Array(spaced.utf8)) != bytes { failures.append("decode with blanks, length \(length)") }
        }
        Self.report(failures)
    }

    @Test(arguments: [
        ("Zm9v!", "a character outside the alphabet"),
        ("Zm9v-_", "base64url characters"),
        ("Zm9vYg\u{0}=", "a NUL byte"),
        ("Zm9vé===", "a byte over 0x7F"),
        ("Zm9", "three symbols"),
        ("Zg=", "padding that does not complete a quantum"),
        ("Z===", "three padding characters"),
        ("====", "padding alone"),
        ("=", "one padding character"),
        ("Zg==Zg==", "data after padding"),
        ("Zm9=v===", "a symbol between padding characters"),
        ("Zm9vY", "a symbol left over"),
    ])
    func base64DecodeRejects(_ text: String, _ why: String) {
        #expect(Self.decode(Array(text.utf8)) == nil, "\(why)")
    }

    @Test(arguments: [("", []), ("Zg==", [0x66]), ("Zm8=", [0x66, 0x6F]), ("Zm9v", [0x66, 0x6F, 0x6F]), (" Zm\r\n9v\t", [0x66, 0x6F, 0x6F])] as [(String, [UInt8])])
    func base64DecodeAccepts(_ text: String, _ bytes: [UInt8]) {
        #expect(Self.decode(Array(text.utf8)) == bytes)
    }

    /// Encoding reads only its input and writes only the (length + 2) / 3 * 4 bytes the header
    /// promises; decoding reads only its input and writes within length / 4 * 3 + 3 bytes.
    @Test func base64StaysInsideItsBuffers() throws {
        let input = try GuardedPage(), output = try GuardedPage()
        var random = SplitMix64(seed: 0xFEED_B64)
        var failures: [String] = []
        for length in 0...300 {
            let source = input.atEnd(length)
            for index in 0..<length { source[index] = UInt8(truncatingIfNeeded: random.next()) }
            let encodedCount = (length + 2) / 3 * 4
            let encoded = output.atEnd(encodedCount)
            let written = smtp_base64_encode(source.baseAddress!, length, encoded.baseAddress!)
            let text = Array(encoded)
            if written != encodedCount || String(decoding: text, as: UTF8.self) != Data(Array(source)).base64EncodedString() {
                failures.append("encode, length \(length)")
            }
            // Decode the text from the end of a page into a buffer ending at the end of another.
            let encodedInput = input.atEnd(text.count)
            encodedInput.copyBytes(from: text)
            let decoded = output.atEnd(text.count / 4 * 3 + 3)
            let count = smtp_base64_decode(encodedInput.baseAddress!, text.count, decoded.baseAddress!)
            if count != length || Array(decoded.prefix(max(0, count))) != Data(base64Encoded: String(decoding: text, as: UTF8.self)).map(Array.init) {
                failures.append("decode, length \(length)")
            }
        }
        Self.report(failures)
    }
}
