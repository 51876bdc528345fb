// TLS record framing over one direction of a reassembled TCP stream.

public enum ContentType: UInt8, Sendable {
    case changeCipherSpec = 20, alert = 21, handshake = 22, applicationData = 23, heartbeat = 24
}

public struct TLSRecord: Sendable {
    public var type: UInt8
    public var version: UInt16
    /// The 5 header bytes as sent: the TLS 1.3 AEAD additional data.
    public var header: ArraySlice<UInt8>
    public var fragment: ArraySlice<UInt8>
}

/// Cuts a byte stream into records. Bytes may arrive in any chunking; `next()` returns nil until a
/// whole record is buffered. The buffer is compacted lazily so steady state does not reallocate.
public struct RecordFramer {
    /// TLSCiphertext.length may be at most 2^14 + 2048 in TLS 1.2 (RFC 5246 6.2.3) and
    /// 2^14 + 256 in TLS 1.3 (RFC 8446 5.2); use the larger.
    public static let maxFragment = 16384 + 2048
    var buffer: [UInt8] = []
    var start = 0
    public private(set) var desynchronised = false

    public init() {}

    public var buffered: Int { buffer.count - start }

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeSubrange(0..<start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    public mutating func next() throws(TLSParseError) -> TLSRecord? {
        guard !desynchronised else { throw TLSParseError("stream not in step with TLS records") }
        guard buffer.count - start >= 5 else { return nil }
        let type = buffer[start]
        let version = UInt16(buffer[start + 1]) << 8 | UInt16(buffer[start + 2])
        let length = Int(buffer[start + 3]) << 8 | Int(buffer[start + 4])
        guard (20...24).contains(type), buffer[start + 1] == 3, length <= Self.maxFragment else {
            desynchronised = true
            throw TLSParseError("not a TLS record header: \(Hex.encode(buffer[start..<(start + 5)]))")
        }
        guard buffer.count - start >= 5 + length else { return nil }
        let record = TLSRecord(type: type, version: version,
                               header: buffer[start..<(start + 5)],
                               fragment: buffer[(start + 5)..<(start + 5 + length)])
        start += 5 + length
        return record
    }
}

/// Handshake messages (type(1) length(3) body) reassembled across records; a record may hold
/// several messages and a message may span records.
public struct HandshakeReassembler {
    var buffer: [UInt8] = []
    public init() {}
    public var isEmpty: Bool { buffer.isEmpty }
    /// Handshake messages larger than this (a certificate chain of 256 KiB) stop the direction.
    public static let maxMessage = 256 << 10
    public mutating func append(_ fragment: some Collection<UInt8>) { buffer.append(contentsOf: fragment) }
    /// Whether the message being reassembled claims more than ``maxMessage`` bytes.
    public var isOversized: Bool {
        buffer.count >= 4 && (Int(buffer[1]) << 16 | Int(buffer[2]) << 8 | Int(buffer[3])) > Self.maxMessage
    }
    /// Next whole message: (type, body). Messages are small except certificates.
    public mutating func next() -> (type: UInt8, body: [UInt8])? {
        guard buffer.count >= 4 else { return nil }
        let length = Int(buffer[1]) << 16 | Int(buffer[2]) << 8 | Int(buffer[3])
        guard buffer.count >= 4 + length else { return nil }
        let message = (type: buffer[0], body: Array(buffer[4..<(4 + length)]))
        buffer.removeSubrange(0..<(4 + length))
        return message
    }
}

public enum HandshakeType: UInt8 {
    case clientHello = 1, serverHello = 2, newSessionTicket = 4, endOfEarlyData = 5,
         encryptedExtensions = 8, certificate = 11, serverKeyExchange = 12, certificateRequest = 13,
         serverHelloDone = 14, certificateVerify = 15, clientKeyExchange = 16, finished = 20,
         keyUpdate = 24, messageHash = 254
}

public struct ClientHelloInfo: Sendable {
    public var random: [UInt8]
    public var cipherSuites: [UInt16]
    public var offersTLS13: Bool
    public var offersEarlyData: Bool
}

public struct ServerHelloInfo: Sendable {
    public var random: [UInt8]
    public var legacyVersion: UInt16
    public var cipherSuite: UInt16
    /// From supported_versions (43); 0x0304 means TLS 1.3.
    public var selectedVersion: UInt16?
    /// encrypt_then_mac (22) echoed by the server: RFC 7366 applies (CBC suites only).
    public var encryptThenMAC: Bool
    public var extendedMasterSecret: Bool
    public var version: UInt16 { selectedVersion ?? legacyVersion }

    /// RFC 8446 4.1.3: a HelloRetryRequest is a ServerHello whose random is SHA-256("HelloRetryRequest").
    public static let helloRetryRequestRandom: [UInt8] = Hex.decode(
        "CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")!
    public var isHelloRetryRequest: Bool { random == Self.helloRetryRequestRandom }
}

public enum HelloParser {
    /// ClientHello body: legacy_version(2) random(32) session_id<0..32> cipher_suites<2..>
    /// compression_methods<1..> extensions<..> (absent in very old clients).
    public static func clientHello(_ body: [UInt8]) throws(TLSParseError) -> ClientHelloInfo {
        var r = ByteReader(body[...])
        _ = try r.u16()
        let random = Array(try r.take(32))
        _ = try r.vector8()
        var suitesReader = ByteReader(try r.vector16())
        var suites: [UInt16] = []
        while !suitesReader.isEmpty { suites.append(try suitesReader.u16()) }
        _ = try r.vector8()
        var tls13 = false, earlyData = false
        if !r.isEmpty {
            var ext = ByteReader(try r.vector16())
            while !ext.isEmpty {
                let type = try ext.u16()
                var data = ByteReader(try ext.vector16())
                switch type {
                case 43:  // supported_versions: <2..254> list of versions
                    var list = ByteReader(try data.vector8())
                    while !list.isEmpty { if try list.u16() == 0x0304 { tls13 = true } }
                case 42: earlyData = true
                default: break
                }
            }
        }
        return ClientHelloInfo(random: random, cipherSuites: suites, offersTLS13: tls13, offersEarlyData: earlyData)
    }

    /// ServerHello body: legacy_version(2) random(32) session_id<0..32> cipher_suite(2)
    /// compression_method(1) extensions<..> (optional before TLS 1.3).
    public static func serverHello(_ body: [UInt8]) throws(TLSParseError) -> ServerHelloInfo {
        var r = ByteReader(body[...])
        let legacy = try r.u16()
        let random = Array(try r.take(32))
        _ = try r.vector8()
        let suite = try r.u16()
        _ = try r.u8()
        var selected: UInt16? = nil
        var etm = false, ems = false
        if !r.isEmpty {
            var ext = ByteReader(try r.vector16())
            while !ext.isEmpty {
                let type = try ext.u16()
                var data = ByteReader(try ext.vector16())
                switch type {
                case 43: selected = try data.u16()   // supported_versions: one selected version
                case 22: etm = true
                case 23: ems = true
                default: break
                }
            }
        }
        return ServerHelloInfo(random: random, legacyVersion: legacy, cipherSuite: suite,
                               selectedVersion: selected, encryptThenMAC: etm, extendedMasterSecret: ems)
    }
}
