import CPcap
import SMTPCore
import SMTPFiles

/// A minimal pcapng reader for the one case libpcap refuses: interfaces with different link types
/// in one file (libpcap 1.10: "an interface has a type ... different from the type of the first
/// interface"). It reads section headers, interface descriptions (with `if_tsresol`), enhanced,
/// simple and obsolete packet blocks, and skips every other block. BPF filters are applied per
/// interface with `pcap_offline_filter`.
struct PcapngReader {
    struct Interface {
        var linkType: Int32
        var snapLength: Int
        /// Timestamp units per second.
        var unitsPerSecond: UInt64
        var filter: UnsafeMutablePointer<bpf_program>?
    }

    struct ReadError: Error { var message: String }

    let path: String
    let input: InputSource
    let filterExpression: String?
    var bigEndian = false
    var interfaces: [Interface] = []
    var block: [UInt8] = []

    init(_ input: InputSource, label: String, filter: String?) throws(CaptureError) {
        self.path = label
        self.input = input
        self.filterExpression = filter
    }

    /// Frees the compiled filters.
    mutating func close() {
        for interface in interfaces { Self.free(interface.filter) }
        interfaces.removeAll()
    }

    static func free(_ program: UnsafeMutablePointer<bpf_program>?) {
        guard let program else { return }
        pcap_freecode(program)
        program.deinitialize(count: 1)
        program.deallocate()
    }

    /// Reads `count` bytes into `buffer` at `offset`; returns how many came (fewer at the end).
    func read(into buffer: inout [UInt8], at offset: Int, count: Int) -> Int {
        var got = 0
        while got < count {
            let n = buffer.withUnsafeMutableBytes { input.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[(offset + got)..<(offset + count)])) }
            if n <= 0 { break }
            got += n
        }
        return got
    }

    func u32(_ offset: Int) -> UInt32 {
        let value = block.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self) }
        return bigEndian ? UInt32(bigEndian: value) : UInt32(littleEndian: value)
    }

    func u16(_ offset: Int) -> UInt16 {
        let value = block.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt16.self) }
        return bigEndian ? UInt16(bigEndian: value) : UInt16(littleEndian: value)
    }

    /// Reads up to the next packet and hands it to `body` (its bytes are valid only there).
    /// Returns `false` at the end of the file.
    mutating func next(_ body: (CapturedPacket, _ passesFilter: Bool) -> Void) throws(ReadError) -> Bool {
        while true {
            var header = [UInt8](repeating: 0, count: 8)
            let got = read(into: &header, at: 0, count: 8)
            if got == 0 { return false }
            guard got == 8 else { throw ReadError(message: "pcapng file truncated inside a block header") }
            var type = header.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
            var length = header.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 4, as: UInt32.self) }
            if type == 0x0A0D_0D0A {
                // A section header: its byte-order magic tells how to read the rest.
                var magic = [UInt8](repeating: 0, count: 4)
                guard read(into: &magic, at: 0, count: 4) == 4 else { throw ReadError(message: "pcapng section header truncated") }
                let raw = magic.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
                if raw == 0x1A2B_3C4D { bigEndian = false } else if raw == 0x4D3C_2B1A { bigEndian = true } else {
                    throw ReadError(message: "pcapng section header with a bad byte-order magic")
                }
                length = bigEndian ? UInt32(bigEndian: length) : UInt32(littleEndian: length)
                guard length >= 28, length % 4 == 0, length < 1 << 26 else { throw ReadError(message: "pcapng section header with bad length \(length)") }
                block = header + magic + [UInt8](repeating: 0, count: Int(length) - 12)
                guard read(into: &block, at: 12, count: Int(length) - 12) == Int(length) - 12 else { throw ReadError(message: "pcapng file truncated inside a section header") }
                for interface in interfaces { Self.free(interface.filter) }
                interfaces.removeAll()
                continue
            }
            type = bigEndian ? UInt32(bigEndian: type) : UInt32(littleEndian: type)
            length = bigEndian ? UInt32(bigEndian: length) : UInt32(littleEndian: length)
            guard length >= 12, length % 4 == 0, length < 1 << 28 else { throw ReadError(message: "pcapng block of type \(type) with bad length \(length)") }
            block = header + [UInt8](repeating: 0, count: Int(length) - 8)
            guard read(into: &block, at: 8, count: Int(length) - 8) == Int(length) - 8 else {
                throw ReadError(message: "capture truncated in the middle of a pcapng block")
            }
            switch type {
            case 1:
                try readInterface(length: Int(length))
            case 6, 2:
                // Enhanced packet block (and the obsolete packet block, whose interface id is 16 bits).
                guard length >= 32 else { throw ReadError(message: "pcapng packet block too short") }
                let interfaceID = type == 6 ? Int(u32(8)) : Int(u16(8))
                guard interfaceID < interfaces.count else { throw ReadError(message: "pcapng packet for undeclared interface \(interfaceID)") }
                let high = UInt64(u32(12)), low = UInt64(u32(16))
                let captured = Int(u32(20)), original = Int(u32(24))
                guard 28 + captured <= Int(length) - 4 else { throw ReadError(message: "pcapng packet length \(captured) exceeds its block") }
                let interface = interfaces[interfaceID]
                withPacket(interface: interface, units: high << 32 | low, dataOffset: 28, captured: captured, original: original, body)
                return true
            case 3:
                guard length >= 16 else { throw ReadError(message: "pcapng simple packet block too short (\(length) bytes)") }
                guard let interface = interfaces.first else { throw ReadError(message: "pcapng simple packet before any interface") }
                let original = Int(u32(8))
                let captured = min(original, Int(length) - 16, interface.snapLength > 0 ? interface.snapLength : Int.max)
                withPacket(interface: interface, units: 0, dataOffset: 12, captured: captured, original: original, body)
                return true
            default:
                continue
            }
        }
    }

    mutating func readInterface(length: Int) throws(ReadError) {
        guard length >= 20 else { throw ReadError(message: "pcapng interface block too short") }
        var interface = Interface(linkType: Int32(u16(8)), snapLength: Int(u32(12)), unitsPerSecond: 1_000_000, filter: nil)
        var offset = 16
        while offset + 4 <= length - 4 {
            let code = u16(offset), optionLength = Int(u16(offset + 2))
            if code == 0 { break }
            if code == 9, optionLength >= 1 {
                let resolution = block[offset + 4]
                let exponent = UInt64(resolution & 0x7F)
                if resolution & 0x80 == 0 {
                    interface.unitsPerSecond = exponent <= 19 ? (0..<exponent).reduce(1) { value, _ in value * 10 } : 1_000_000_000
                } else {
                    interface.unitsPerSecond = exponent < 64 ? 1 << exponent : 1_000_000_000
                }
            }
            offset += 4 + (optionLength + 3) / 4 * 4
        }
        if let expression = filterExpression, let dead = pcap_open_dead(interface.linkType, 262_144) {
            let program = UnsafeMutablePointer<bpf_program>.allocate(capacity: 1)
            program.initialize(to: bpf_program())
            if pcap_compile(dead, program, expression, 1, PCAP_NETMASK_UNKNOWN) == 0 {
                interface.filter = program
            } else {
                program.deallocate()
            }
            pcap_close(dead)
        }
        interfaces.append(interface)
    }

    func withPacket(interface: Interface, units: UInt64, dataOffset: Int, captured: Int, original: Int, _ body: (CapturedPacket, Bool) -> Void) {
        let seconds = units / interface.unitsPerSecond
        let fraction = units % interface.unitsPerSecond
        let nanos = interface.unitsPerSecond >= 1_000_000_000 ? fraction / (interface.unitsPerSecond / 1_000_000_000) : fraction * (1_000_000_000 / interface.unitsPerSecond)
        block.withUnsafeBytes {
            let packet = CapturedPacket(time: Timestamp(seconds: Int64(clamping: seconds), nanoseconds: Int64(clamping: nanos)), linkType: interface.linkType,
                                        bytes: UnsafeRawBufferPointer(rebasing: $0[dataOffset..<(dataOffset + captured)]), wireLength: original)
            body(packet, passesFilter(packet, interface: interface))
        }
    }

    /// Whether the packet passes `--filter` on its interface (always, without a filter).
    func passesFilter(_ packet: CapturedPacket, interface: Interface) -> Bool {
        guard filterExpression != nil else { return true }
        guard let program = interface.filter else { return false }
        var header = pcap_pkthdr()
        header.caplen = bpf_u_int32(packet.bytes.count)
        header.len = bpf_u_int32(packet.wireLength)
        return pcap_offline_filter(program, &header, packet.bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)) != 0
    }
}
