// TLS record framing over one direction of a reassembled TCP stream.

public enum ContentType: UInt8, Sendable {
    case changeCipherSpec = 20, alert = 21, handshake = 22, applicationData = 23, heartbeat = 24
}

/// One TLS record, viewed in place: valid only while the bytes it points into are (the caller's
/// segment, or the framer's buffer for a record that spanned segments).
public struct TLSRecord {
    public var type: UInt8
    public var version: UInt16
    /// The 5 header bytes as sent: the TLS 1.3 AEAD additional data.
    public var header: UnsafeRawBufferPointer
    public var fragment: UnsafeRawBufferPointer
    /// For a record the framer put together from pieces: the 12 bytes right before `fragment`
    /// (spare bytes and the header), which an AEAD may overwrite with its nonce to open the
    /// record where it lies. `header` is not to be read once they are.
    var scratchBeforeFragment: UnsafeMutableRawPointer?

    /// TLSCiphertext.length may be at most 2^14 + 2048 in TLS 1.2 (RFC 5246 6.2.3) and
    /// 2^14 + 256 in TLS 1.3 (RFC 8446 5.2); the larger is allowed.
    public static let maxFragment = 16384 + 2048

    /// The fragment's length if `bytes` begins with a plausible record header (content type 20
    /// to 24, major version 3, length within bounds); nil if it does not. Needs 5 bytes.
    static func fragmentLength(header bytes: UnsafeRawBufferPointer) -> Int? {
        let length = Int(bytes[3]) << 8 | Int(bytes[4])
        guard (20...24).contains(bytes[0]), bytes[1] == 3, length <= maxFragment else { return nil }
        return length
    }

    /// The record at the start of `bytes`, which must hold it whole (tests, and records held back).
    public static func parse(_ bytes: UnsafeRawBufferPointer) -> TLSRecord? {
        guard bytes.count >= 5, let length = fragmentLength(header: bytes), bytes.count >= 5 + length else { return nil }
        return TLSRecord(type: bytes[0], version: UInt16(bytes[1]) << 8 | UInt16(bytes[2]),
                         header: UnsafeRawBufferPointer(rebasing: bytes[0..<5]),
                         fragment: UnsafeRawBufferPointer(rebasing: bytes[5..<(5 + length)]))
    }

    /// The whole record's bytes, copied (for a record that must wait).
    var bytes: [UInt8] { Array(header) + Array(fragment) }
}

/// Cuts one direction's byte stream into records, in place where a record lies whole inside the
/// bytes given, and through a buffer only for a record split across them.
public struct RecordFramer {
    /// The start of a record that spanned the bytes given so far.
    var partial: [UInt8] = []
    /// Where a record put together from pieces is opened (kept from record to record).
    var spare: [UInt8] = []

    public init() {}

    public var buffered: Int { partial.count }

    public struct OutOfStep: Error {
        public var header: [UInt8]
    }

    /// Calls `body` for each record that `bytes` completes, in order, while it returns true.
    /// Throws when the stream is not a series of records (a gap, or not TLS).
    public mutating func records(in input: UnsafeRawBufferPointer, _ body: (TLSRecord) -> Bool) throws(OutOfStep) {
        var input = input
        if !partial.isEmpty {
            // Complete the record begun before: first its header, then its fragment.
            if partial.count < 5 {
                let take = min(5 - partial.count, input.count)
                partial.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[0..<take]))
                input = UnsafeRawBufferPointer(rebasing: input[take...])
                guard partial.count == 5 else { return }
            }
            guard let length = partial.withUnsafeBytes({ TLSRecord.fragmentLength(header: $0) }) else {
                throw OutOfStep(header: Array(partial.prefix(5)))
            }
            let take = min(5 + length - partial.count, input.count)
            partial.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[0..<take]))
            input = UnsafeRawBufferPointer(rebasing: input[take...])
            guard partial.count == 5 + length else { return }
            // The record is opened where it lies: 7 spare bytes and the header give the 12 bytes
            // an AEAD nonce needs right before the fragment.
            var whole = [UInt8](repeating: 0, count: 0)
            swap(&whole, &spare)
            whole.removeAll(keepingCapacity: true)
            whole.append(contentsOf: [0, 0, 0, 0, 0, 0, 0])
            whole.append(contentsOf: partial)
            let goOn = whole.withUnsafeMutableBytes { buffer in
                var record = TLSRecord.parse(UnsafeRawBufferPointer(rebasing: buffer[7...]))!
                record.scratchBeforeFragment = buffer.baseAddress
                return body(record)
            }
            swap(&whole, &spare)
            partial.removeAll(keepingCapacity: true)
            guard goOn else { return }
        }
        while input.count >= 5 {
            guard let length = TLSRecord.fragmentLength(header: input) else {
                throw OutOfStep(header: Array(input.prefix(5)))
            }
            guard input.count >= 5 + length else { break }
            guard body(TLSRecord.parse(input)!) else { return }
            input = UnsafeRawBufferPointer(rebasing: input[(5 + length)...])
        }
        partial.append(contentsOf: input)
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
