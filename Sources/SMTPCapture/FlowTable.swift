/// A TCP connection's identity, with its endpoints in a fixed order so both directions share it.
/// IPv4 addresses are stored IPv4-mapped (`::ffff:a.b.c.d`).
struct FlowKey: Equatable {
    var addressA: (UInt64, UInt64)
    var addressB: (UInt64, UInt64)
    var portA: UInt16
    var portB: UInt16
    var isIPv6: Bool

    static func == (lhs: FlowKey, rhs: FlowKey) -> Bool {
        lhs.addressA == rhs.addressA && lhs.addressB == rhs.addressB && lhs.portA == rhs.portA && lhs.portB == rhs.portB
    }

    /// The key for a packet from `source` to `destination`, and whether that is the A-to-B direction.
    @inline(__always)
    static func make(source: (UInt64, UInt64), sourcePort: UInt16, destination: (UInt64, UInt64), destinationPort: UInt16, isIPv6: Bool) -> (FlowKey, Bool) {
        let sourceFirst = source.0 < destination.0 || (source.0 == destination.0 && (source.1 < destination.1 || (source.1 == destination.1 && sourcePort <= destinationPort)))
        if sourceFirst {
            return (FlowKey(addressA: source, addressB: destination, portA: sourcePort, portB: destinationPort, isIPv6: isIPv6), true)
        }
        return (FlowKey(addressA: destination, addressB: source, portA: destinationPort, portB: sourcePort, isIPv6: isIPv6), false)
    }

    /// A cheap, well-mixed hash (the standard `Hasher` costs a quarter of the hot path).
    @inline(__always)
    var hash: UInt64 {
        var h = addressA.1 &* 0x9E37_79B9_7F4A_7C15
        h ^= addressB.1 &* 0xC2B2_AE3D_27D4_EB4F
        h ^= (addressA.0 ^ (addressB.0 << 1)) &* 0x1656_67B1_9E37_79F9
        h ^= UInt64(portA) << 16 | UInt64(portB)
        h ^= h >> 29
        h = h &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 32
        return h
    }

    func endpoint(first: Bool) -> String {
        let address = first ? addressA : addressB
        let port = first ? portA : portB
        guard !isIPv6 else { return FlowKey.format(address, isIPv6: true) + ":" + String(port) }
        // `a.b.c.d:port` written into a small buffer on the stack: this runs for every session.
        let v4 = UInt32(truncatingIfNeeded: address.1)
        return String(unsafeUninitializedCapacity: 21) { out in
            var count = 0
            func put(_ value: Int) {
                if value >= 10_000 { out[count] = UInt8(0x30 + value / 10_000); count += 1 }
                if value >= 1000 { out[count] = UInt8(0x30 + value / 1000 % 10); count += 1 }
                if value >= 100 { out[count] = UInt8(0x30 + value / 100 % 10); count += 1 }
                if value >= 10 { out[count] = UInt8(0x30 + value / 10 % 10); count += 1 }
                out[count] = UInt8(0x30 + value % 10)
                count += 1
            }
            put(Int(v4 >> 24)); out[count] = 0x2E; count += 1
            put(Int(v4 >> 16 & 0xFF)); out[count] = 0x2E; count += 1
            put(Int(v4 >> 8 & 0xFF)); out[count] = 0x2E; count += 1
            put(Int(v4 & 0xFF)); out[count] = 0x3A; count += 1
            put(Int(port))
            return count
        }
    }

    static func format(_ address: (UInt64, UInt64), isIPv6: Bool) -> String {
        if !isIPv6 {
            let v4 = UInt32(truncatingIfNeeded: address.1)
            return "\(v4 >> 24).\(v4 >> 16 & 0xFF).\(v4 >> 8 & 0xFF).\(v4 & 0xFF)"
        }
        // RFC 5952: lower-case hex, the longest run of two or more zero groups as "::".
        let groups: [UInt16] = (0..<8).map { index in
            let word = index < 4 ? address.0 : address.1
            return UInt16(truncatingIfNeeded: word >> (UInt64(3 - index % 4) * 16))
        }
        var bestStart = -1, bestLength = 0, runStart = -1
        for index in 0...8 {
            if index < 8, groups[index] == 0 {
                if runStart < 0 { runStart = index }
            } else if runStart >= 0 {
                if index - runStart > bestLength { bestStart = runStart; bestLength = index - runStart }
                runStart = -1
            }
        }
        if bestLength < 2 { bestStart = -1 }
        var text = ""
        var index = 0
        while index < 8 {
            if index == bestStart {
                text += "::"
                index += bestLength
                continue
            }
            if !text.isEmpty, !text.hasSuffix(":") { text += ":" }
            text += String(groups[index], radix: 16)
            index += 1
        }
        return "[" + text + "]"
    }
}

/// An open-addressing hash table from flow keys to connection slots (linear probing,
/// backward-shift deletion). Slots index a contiguous array of connection states.
struct FlowTable {
    private var keys: [FlowKey?]
    private var slots: [Int32]
    private var mask: Int
    private(set) var count = 0

    init(capacity: Int = 1024) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        keys = Array(repeating: nil, count: size)
        slots = Array(repeating: -1, count: size)
        mask = size - 1
    }

    @inline(__always)
    func find(_ key: FlowKey) -> Int? {
        var index = Int(truncatingIfNeeded: key.hash) & mask
        while let candidate = keys[index] {
            if candidate == key { return Int(slots[index]) }
            index = (index + 1) & mask
        }
        return nil
    }

    mutating func insert(_ key: FlowKey, slot: Int) {
        if (count + 1) * 2 > keys.count { grow() }
        var index = Int(truncatingIfNeeded: key.hash) & mask
        while let candidate = keys[index] {
            if candidate == key { slots[index] = Int32(slot); return }
            index = (index + 1) & mask
        }
        keys[index] = key
        slots[index] = Int32(slot)
        count += 1
    }

    mutating func remove(_ key: FlowKey) {
        var index = Int(truncatingIfNeeded: key.hash) & mask
        while let candidate = keys[index] {
            if candidate == key { break }
            index = (index + 1) & mask
        }
        guard keys[index] != nil else { return }
        keys[index] = nil
        count -= 1
        // Shift later members of the probe run back so lookups never stop early.
        var hole = index
        var next = (index + 1) & mask
        while let candidate = keys[next] {
            let home = Int(truncatingIfNeeded: candidate.hash) & mask
            let distanceToNext = (next - home) & mask
            let distanceToHole = (hole - home) & mask
            if distanceToHole < distanceToNext {
                keys[hole] = candidate
                slots[hole] = slots[next]
                keys[next] = nil
                hole = next
            }
            next = (next + 1) & mask
        }
    }

    private mutating func grow() {
        let oldKeys = keys, oldSlots = slots
        keys = Array(repeating: nil, count: oldKeys.count * 2)
        slots = Array(repeating: -1, count: oldKeys.count * 2)
        mask = keys.count - 1
        count = 0
        for (index, key) in oldKeys.enumerated() {
            if let key { insert(key, slot: Int(oldSlots[index])) }
        }
    }
}
