/// A TCP segment decoded in place from a captured frame.
struct TCPSegment {
    var key: FlowKey
    /// Whether the packet goes from the key's first endpoint to its second.
    var forward: Bool
    var sequence: UInt32
    var acknowledgement: UInt32
    var flags: UInt8
    /// The captured payload (possibly shorter than ``payloadLength`` when the snap length cut it).
    var payload: UnsafeRawBufferPointer
    /// The payload length on the wire, from the IP header.
    var payloadLength: Int

    static let fin: UInt8 = 0x01, syn: UInt8 = 0x02, rst: UInt8 = 0x04, ack: UInt8 = 0x10

    var isSYN: Bool { flags & Self.syn != 0 }
    var isFIN: Bool { flags & Self.fin != 0 }
    var isRST: Bool { flags & Self.rst != 0 }
    var hasACK: Bool { flags & Self.ack != 0 }
}

/// Why a packet was not decoded as TCP.
enum DecodeOutcome {
    case segment(TCPSegment)
    /// Not TCP over IP (ARP, UDP, ICMP, a later IP fragment, ...): skipped silently.
    case notTCP
    /// Cut by the snap length before the end of the TCP header.
    case truncatedHeader
    /// Headers that cannot be right (IPv4 header length under 20, TCP offset past the packet...).
    case corrupt(String)
    case unsupportedLinkType
}

/// Link-layer types smtptape decodes (libpcap DLT values; see pcap-linktype(7)).
enum LinkType {
    static let null: Int32 = 0          // BSD loopback, host-order family
    static let ethernet: Int32 = 1
    static let raw: Int32 = 12          // DLT_RAW on Linux (LINKTYPE_RAW 101 maps to it)
    static let rawOpenBSD: Int32 = 14
    static let loop: Int32 = 108        // OpenBSD loopback, network-order family
    static let linuxSLL: Int32 = 113
    static let rawLinktype: Int32 = 101
    static let ipv4: Int32 = 228
    static let ipv6: Int32 = 229
    static let linuxSLL2: Int32 = 276

    static func isSupported(_ type: Int32) -> Bool {
        [null, ethernet, raw, rawOpenBSD, loop, linuxSLL, rawLinktype, ipv4, ipv6, linuxSLL2].contains(type)
    }
}

enum PacketDecoder {
    /// Finds the TCP segment in a frame, reading the bytes in place.
    @inline(__always)
    static func decode(_ frame: UnsafeRawBufferPointer, linkType: Int32) -> DecodeOutcome {
        var offset: Int
        var etherType: UInt16
        switch linkType {
        case LinkType.ethernet:
            guard frame.count >= 14 else { return .truncatedHeader }
            offset = 12
            etherType = frame.u16(offset)
            offset = 14
            // 802.1Q, 802.1ad and the old 0x9100 Q-in-Q tags, any number of them.
            while etherType == 0x8100 || etherType == 0x88A8 || etherType == 0x9100 {
                guard frame.count >= offset + 4 else { return .truncatedHeader }
                etherType = frame.u16(offset + 2)
                offset += 4
            }
        case LinkType.linuxSLL:
            guard frame.count >= 16 else { return .truncatedHeader }
            etherType = frame.u16(14)
            offset = 16
        case LinkType.linuxSLL2:
            guard frame.count >= 20 else { return .truncatedHeader }
            etherType = frame.u16(0)
            offset = 20
        case LinkType.null, LinkType.loop:
            guard frame.count >= 4 else { return .truncatedHeader }
            let family = frame.loadUnaligned(fromByteOffset: 0, as: UInt32.self)
            let value = family > 0xFFFF ? family.byteSwapped : family
            switch value {
            case 2: etherType = 0x0800
            case 10, 24, 28, 30: etherType = 0x86DD  // AF_INET6 on Linux, NetBSD/OpenBSD, FreeBSD, Darwin
            default: return .notTCP
            }
            offset = 4
        case LinkType.raw, LinkType.rawOpenBSD, LinkType.rawLinktype, LinkType.ipv4, LinkType.ipv6:
            guard !frame.isEmpty else { return .truncatedHeader }
            etherType = frame[0] >> 4 == 6 ? 0x86DD : 0x0800
            offset = 0
        default:
            return .unsupportedLinkType
        }
        switch etherType {
        case 0x0800: return decodeIPv4(frame, at: offset)
        case 0x86DD: return decodeIPv6(frame, at: offset)
        default: return .notTCP
        }
    }

    @inline(__always)
    static func decodeIPv4(_ frame: UnsafeRawBufferPointer, at start: Int) -> DecodeOutcome {
        guard frame.count >= start + 20 else { return .truncatedHeader }
        let versionAndLength = frame[start]
        guard versionAndLength >> 4 == 4 else { return .corrupt("IPv4 header with version \(versionAndLength >> 4)") }
        let headerLength = Int(versionAndLength & 0x0F) * 4
        guard headerLength >= 20 else { return .corrupt("IPv4 header length \(headerLength) is under 20") }
        let totalLength = Int(frame.u16(start + 2))
        let fragment = frame.u16(start + 6)
        guard frame[start + 9] == 6 else { return .notTCP }
        if fragment & 0x1FFF != 0 { return .notTCP }  // a later fragment: no TCP header
        // TSO on the capturing host leaves total length 0: then the frame says how long it is.
        let ipEnd = totalLength == 0 ? frame.count : start + totalLength
        guard totalLength == 0 || totalLength >= headerLength else {
            return .corrupt("IPv4 total length \(totalLength) is under its header length \(headerLength)")
        }
        let source = UInt64(frame.u32(start + 12))
        let destination = UInt64(frame.u32(start + 16))
        return decodeTCP(frame, at: start + headerLength, ipEnd: ipEnd,
                         source: (0, source | 0xFFFF_0000_0000), destination: (0, destination | 0xFFFF_0000_0000), isIPv6: false)
    }

    static func decodeIPv6(_ frame: UnsafeRawBufferPointer, at start: Int) -> DecodeOutcome {
        guard frame.count >= start + 40 else { return .truncatedHeader }
        guard frame[start] >> 4 == 6 else { return .corrupt("IPv6 header with version \(frame[start] >> 4)") }
        let payloadLength = Int(frame.u16(start + 4))
        var next = frame[start + 6]
        let source = (frame.u64(start + 8), frame.u64(start + 16))
        let destination = (frame.u64(start + 24), frame.u64(start + 32))
        var offset = start + 40
        let ipEnd = payloadLength == 0 ? frame.count : offset + payloadLength
        // Walk the extension headers (RFC 8200 4.1).
        while true {
            switch next {
            case 6:
                return decodeTCP(frame, at: offset, ipEnd: ipEnd, source: source, destination: destination, isIPv6: true)
            case 0, 43, 60, 135, 139, 140:  // hop-by-hop, routing, destination options, mobility, HIP, shim6
                guard frame.count >= offset + 2 else { return .truncatedHeader }
                next = frame[offset]
                offset += (Int(frame[offset + 1]) + 1) * 8
            case 44:  // fragment
                guard frame.count >= offset + 8 else { return .truncatedHeader }
                if frame.u16(offset + 2) & 0xFFF8 != 0 { return .notTCP }
                next = frame[offset]
                offset += 8
            case 51:  // authentication header
                guard frame.count >= offset + 2 else { return .truncatedHeader }
                next = frame[offset]
                offset += (Int(frame[offset + 1]) + 2) * 4
            default:
                return .notTCP
            }
        }
    }

    @inline(__always)
    static func decodeTCP(_ frame: UnsafeRawBufferPointer, at start: Int, ipEnd: Int, source: (UInt64, UInt64), destination: (UInt64, UInt64), isIPv6: Bool) -> DecodeOutcome {
        guard frame.count >= start + 20 else { return .truncatedHeader }
        let dataOffset = Int(frame[start + 12] >> 4) * 4
        guard dataOffset >= 20 else { return .corrupt("TCP header length \(dataOffset) is under 20") }
        guard ipEnd >= start + dataOffset else { return .corrupt("TCP header runs past the end of the IP packet") }
        let sourcePort = frame.u16(start)
        let destinationPort = frame.u16(start + 2)
        let payloadStart = start + dataOffset
        let payloadLength = ipEnd - payloadStart
        let captured = max(0, min(frame.count, ipEnd) - payloadStart)
        let (key, forward) = FlowKey.make(source: source, sourcePort: sourcePort, destination: destination, destinationPort: destinationPort, isIPv6: isIPv6)
        return .segment(TCPSegment(
            key: key, forward: forward,
            sequence: frame.u32(start + 4), acknowledgement: frame.u32(start + 8),
            flags: frame[start + 13],
            payload: captured > 0 ? UnsafeRawBufferPointer(rebasing: frame[payloadStart..<(payloadStart + captured)]) : UnsafeRawBufferPointer(start: nil, count: 0),
            payloadLength: payloadLength))
    }
}

extension UnsafeRawBufferPointer {
    @inline(__always) func u16(_ offset: Int) -> UInt16 { UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self)) }
    @inline(__always) func u32(_ offset: Int) -> UInt32 { UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    @inline(__always) func u64(_ offset: Int) -> UInt64 { UInt64(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
}
