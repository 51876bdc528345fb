import Foundation

/// Writes small synthetic pcap files: TCP segments framed in a chosen link layer, over IPv4 or
/// IPv6, with exact control of sequence numbers, order, snap length and damage.
struct PcapBuilder {
    enum Link: Int {
        case ethernet = 1, null = 0, raw = 101, linuxSLL = 113, linuxSLL2 = 276
    }

    struct Endpoint {
        var address: [UInt8]  // 4 or 16 bytes
        var port: UInt16
        static func v4(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8, port: UInt16) -> Endpoint { Endpoint(address: [a, b, c, d], port: port) }
        static func v6(last: UInt8, port: UInt16) -> Endpoint { Endpoint(address: [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [last], port: port) }
    }

    var link: Link = .ethernet
    var vlanTags: [UInt16] = []  // ethertypes of tags to insert (0x8100, 0x88A8)
    var nanosecond = false
    var snapLength = 65535
    var ipv6ExtensionHeader = false
    /// An IPv6 authentication header (RFC 4302, whose length counts 4-byte words) before TCP.
    var ipv6AuthenticationHeader = false
    /// Marks the next packets as an IP fragment: `offset` in 8-byte units, `more` when more
    /// fragments follow (IPv4 flags and offset; an IPv6 fragment header). `nil`: not fragmented.
    var fragment: (offset: UInt16, more: Bool)?
    var ethernetTrailer = 0
    private(set) var records: [[UInt8]] = []
    private var clock: Int64 = 1_700_000_000_000_000  // microseconds

    init(link: Link = .ethernet) { self.link = link }

    static let fin: UInt8 = 0x01, syn: UInt8 = 0x02, rst: UInt8 = 0x04, psh: UInt8 = 0x08, ack: UInt8 = 0x10

    mutating func segment(from source: Endpoint, to destination: Endpoint, seq: UInt32, ack: UInt32 = 0, flags: UInt8 = 0x18, payload: [UInt8] = [], advance: Int64 = 1000) {
        clock += advance
        var tcp: [UInt8] = []
        tcp += be16(source.port) + be16(destination.port) + be32(seq) + be32(ack)
        tcp += [0x50, flags] + be16(65535) + [0, 0] + [0, 0]  // checksum left zero, as on loopback
        tcp += payload
        var ip: [UInt8]
        if source.address.count == 4 {
            let total = 20 + tcp.count
            let flagsAndOffset = fragment.map { ($0.more ? 0x2000 : 0) | $0.offset } ?? 0x4000  // else don't fragment
            ip = [0x45, 0] + be16(UInt16(total)) + [0, 1] + be16(flagsAndOffset) + [64, 6, 0, 0] + source.address + destination.address
        } else {
            // Extension headers in order, each without its first byte (the next header's type).
            var headers: [(type: UInt8, rest: [UInt8])] = []
            if ipv6ExtensionHeader { headers.append((0, [0, 1, 4, 0, 0, 0, 0])) }  // hop-by-hop with PadN
            if ipv6AuthenticationHeader {
                // Payload length 4: (4 + 2) * 4 = 24 bytes; SPI, sequence number, 12-byte ICV.
                headers.append((51, [4, 0, 0] + [0, 0, 1, 0] + [0, 0, 0, 1] + Array(repeating: 0xAA, count: 12)))
            }
            if let fragment { headers.append((44, [0] + be16(fragment.offset << 3 | (fragment.more ? 1 : 0)) + [0, 0, 0, 1])) }
            var next: UInt8 = 6
            var ext: [UInt8] = []
            for header in headers.reversed() {
                ext = [next] + header.rest + ext
                next = header.type
            }
            ip = [0x60, 0, 0, 0] + be16(UInt16(ext.count + tcp.count)) + [next, 64] + source.address + destination.address + ext
        }
        let packet = ip + tcp
        let isV6 = source.address.count == 16
        var frame: [UInt8]
        switch link {
        case .ethernet:
            frame = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]
            for tag in vlanTags { frame += be16(tag) + [0, 100] }
            frame += be16(isV6 ? 0x86DD : 0x0800) + packet + Array(repeating: 0xEE, count: ethernetTrailer)
        case .null:
            frame = (isV6 ? [30, 0, 0, 0] : [2, 0, 0, 0]) + packet
        case .raw:
            frame = packet
        case .linuxSLL:
            frame = [0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0] + be16(isV6 ? 0x86DD : 0x0800) + packet
        case .linuxSLL2:
            frame = be16(isV6 ? 0x86DD : 0x0800) + [0, 0] + [0, 0, 0, 1] + [0, 1, 0, 6] + [2, 0, 0, 0, 0, 1, 0, 0] + packet
        }
        let captured = Array(frame.prefix(snapLength))
        let seconds = UInt32(clock / 1_000_000), fraction = UInt32(nanosecond ? (clock % 1_000_000) * 1000 : clock % 1_000_000)
        records.append(le32(seconds) + le32(fraction) + le32(UInt32(captured.count)) + le32(UInt32(frame.count)) + captured)
    }

    /// The pcap file's bytes.
    var bytes: [UInt8] {
        let magic: UInt32 = nanosecond ? 0xA1B2_3C4D : 0xA1B2_C3D4
        var header = le32(magic) + le16(2) + le16(4) + le32(0) + le32(0) + le32(UInt32(snapLength)) + le32(UInt32(link.rawValue))
        for record in records { header += record }
        return header
    }

    func write(to url: URL, truncateBy: Int = 0) throws {
        let all = bytes
        try Data(all.prefix(all.count - truncateBy)).write(to: url)
    }

    mutating func damageLastRecordLength() {
        guard !records.isEmpty else { return }
        records[records.count - 1].replaceSubrange(8..<12, with: le32(0xF000_0000))
    }

    private func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
    private func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    private func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
    private func le32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24)] }
}

/// A TCP conversation written packet by packet, tracking both sides' sequence numbers.
struct Conversation {
    var pcap: PcapBuilder
    var client: PcapBuilder.Endpoint
    var server: PcapBuilder.Endpoint
    var clientSeq: UInt32
    var serverSeq: UInt32

    init(pcap: PcapBuilder = PcapBuilder(), client: PcapBuilder.Endpoint = .v4(192, 0, 2, 1, port: 40000), server: PcapBuilder.Endpoint = .v4(192, 0, 2, 25, port: 25), clientISN: UInt32 = 1000, serverISN: UInt32 = 5000) {
        self.pcap = pcap
        self.client = client
        self.server = server
        clientSeq = clientISN
        serverSeq = serverISN
    }

    mutating func handshake() {
        pcap.segment(from: client, to: server, seq: clientSeq, flags: PcapBuilder.syn)
        pcap.segment(from: server, to: client, seq: serverSeq, ack: clientSeq &+ 1, flags: PcapBuilder.syn | PcapBuilder.ack)
        clientSeq &+= 1
        serverSeq &+= 1
        pcap.segment(from: client, to: server, seq: clientSeq, ack: serverSeq, flags: PcapBuilder.ack)
    }

    mutating func server(_ text: String) { server(Array(text.utf8)) }
    mutating func client(_ text: String) { client(Array(text.utf8)) }

    mutating func server(_ bytes: [UInt8]) {
        pcap.segment(from: server, to: client, seq: serverSeq, ack: clientSeq, payload: bytes)
        serverSeq &+= UInt32(bytes.count)
    }

    mutating func client(_ bytes: [UInt8]) {
        pcap.segment(from: client, to: server, seq: clientSeq, ack: serverSeq, payload: bytes)
        clientSeq &+= UInt32(bytes.count)
    }

    /// Bytes the client sent that the capture lost: the sequence moves on, no packet is written.
    mutating func lostClient(_ text: String) { clientSeq &+= UInt32(text.utf8.count) }

    /// Bytes the server sent that the capture lost.
    mutating func lostServer(_ text: String) { serverSeq &+= UInt32(text.utf8.count) }

    /// A FIN from the server first, then the client's (who closed: the server).
    mutating func closeByServer() {
        pcap.segment(from: server, to: client, seq: serverSeq, ack: clientSeq, flags: PcapBuilder.fin | PcapBuilder.ack)
        pcap.segment(from: client, to: server, seq: clientSeq, ack: serverSeq &+ 1, flags: PcapBuilder.fin | PcapBuilder.ack)
        clientSeq &+= 1
        serverSeq &+= 1
        pcap.segment(from: server, to: client, seq: serverSeq, ack: clientSeq, flags: PcapBuilder.ack)
    }

    /// Client segments sent in the given order (indices into `pieces`), e.g. reordered or repeated.
    mutating func clientPieces(_ pieces: [[UInt8]], order: [Int]) {
        var offsets: [UInt32] = []
        var offset: UInt32 = 0
        for piece in pieces { offsets.append(offset); offset &+= UInt32(piece.count) }
        for index in order {
            pcap.segment(from: client, to: server, seq: clientSeq &+ offsets[index], ack: serverSeq, payload: pieces[index])
        }
        clientSeq &+= offset
    }

    mutating func close() {
        pcap.segment(from: client, to: server, seq: clientSeq, ack: serverSeq, flags: PcapBuilder.fin | PcapBuilder.ack)
        pcap.segment(from: server, to: client, seq: serverSeq, ack: clientSeq &+ 1, flags: PcapBuilder.fin | PcapBuilder.ack)
        clientSeq &+= 1
        serverSeq &+= 1
        pcap.segment(from: client, to: server, seq: clientSeq, ack: serverSeq, flags: PcapBuilder.ack)
    }
}

extension PcapBuilder {
    /// The frames written so far, with their timestamps (microseconds) and the builder's link type.
    var frames: [(micros: UInt64, link: Int, bytes: [UInt8])] {
        records.map { record in
            let seconds = UInt64(record[0]) | UInt64(record[1]) << 8 | UInt64(record[2]) << 16 | UInt64(record[3]) << 24
            let fraction = UInt64(record[4]) | UInt64(record[5]) << 8 | UInt64(record[6]) << 16 | UInt64(record[7]) << 24
            return (seconds * 1_000_000 + fraction, link.rawValue, Array(record[16...]))
        }
    }

    /// A pcapng file with one interface per builder (each its own link type), packets in time order.
    /// With `decimalResolution`, each interface says (`if_tsresol`) that timestamps count units
    /// of 10^-n seconds, and they do; without it, the default microseconds.
    static func pcapng(_ builders: [PcapBuilder], simpleBlockLength: Int? = nil, decimalResolution: UInt8? = nil) -> [UInt8] {
        func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        func le32(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24 & 0xFF)] }
        func block(_ type: Int, _ body: [UInt8]) -> [UInt8] {
            let padded = body + Array(repeating: 0, count: (4 - body.count % 4) % 4)
            return le32(type) + le32(padded.count + 12) + padded + le32(padded.count + 12)
        }
        var out = block(0x0A0D_0D0A, [0x4D, 0x3C, 0x2B, 0x1A] + le16(1) + le16(0) + Array(repeating: 0xFF, count: 8))
        for builder in builders {
            let options: [UInt8] = decimalResolution.map { [9, 0, 1, 0, $0, 0, 0, 0, 0, 0, 0, 0] } ?? []
            out += block(1, le16(builder.link.rawValue) + le16(0) + le32(65535) + options)
        }
        func units(_ micros: UInt64) -> UInt64 {
            guard let exponent = decimalResolution else { return micros }
            var value = micros
            for _ in 6..<max(6, Int(exponent)) { value *= 10 }
            for _ in min(6, Int(exponent))..<6 { value /= 10 }  // exact for the builder's whole milliseconds
            return value
        }
        let packets = builders.enumerated().flatMap { index, builder in builder.frames.map { (index, $0) } }.sorted { $0.1.micros < $1.1.micros }
        for (interface, frame) in packets {
            let stamp = units(frame.micros)
            out += block(6, le32(interface) + le32(Int(stamp >> 32)) + le32(Int(stamp & 0xFFFF_FFFF)) + le32(frame.bytes.count) + le32(frame.bytes.count) + frame.bytes)
        }
        if let simpleBlockLength {
            out += le32(3) + le32(simpleBlockLength) + Array(repeating: 0, count: max(0, simpleBlockLength - 8))
        }
        return out
    }
}
