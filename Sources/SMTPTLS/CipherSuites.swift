// The cipher suites the decryptor handles, with what each needs from the key schedule.

public enum BulkCipher: Sendable {
    case aes128GCM, aes256GCM, chaCha20Poly1305, aes128CBC, aes256CBC
    public var keyLength: Int {
        switch self { case .aes128GCM, .aes128CBC: 16; case .aes256GCM, .aes256CBC, .chaCha20Poly1305: 32 }
    }
    public var isAEAD: Bool { switch self { case .aes128CBC, .aes256CBC: false; default: true } }
}

/// TLS 1.2 record MAC (CBC suites only; AEAD suites have none).
public enum RecordMAC: Sendable {
    case none, hmacSHA1, hmacSHA256, hmacSHA384
    public var length: Int { switch self { case .none: 0; case .hmacSHA1: 20; case .hmacSHA256: 32; case .hmacSHA384: 48 } }
}

/// The hash of the TLS 1.2 PRF, or of TLS 1.3's HKDF.
public enum SuiteHash: Sendable {
    case sha256, sha384
    public var length: Int { self == .sha256 ? 32 : 48 }
}

public struct CipherSuite: Sendable, Hashable {
    public var id: UInt16
    public var name: String         // IANA name
    public var cipher: BulkCipher
    public var mac: RecordMAC
    public var hash: SuiteHash      // PRF hash (1.2) or HKDF hash (1.3)
    public var isTLS13: Bool

    public static func == (a: Self, b: Self) -> Bool { a.id == b.id }
    public func hash(into h: inout Hasher) { h.combine(id) }

    /// TLS 1.2 key block: fixed IV length per direction (RFC 5288: 4-byte salt; RFC 7905: 12 bytes;
    /// CBC in TLS 1.1+: 0, the IV is explicit in each record).
    public var fixedIVLength: Int {
        switch cipher { case .aes128GCM, .aes256GCM: 4; case .chaCha20Poly1305: 12; case .aes128CBC, .aes256CBC: 0 }
    }

    public static func named(_ id: UInt16) -> CipherSuite? { table[id] }

    /// A suite's IANA name and number (`TLS_AES_128_CCM_SHA256 (0x1304)`), or its number alone.
    public static func describe(_ id: UInt16) -> String {
        let hex = "0x" + String(repeating: "0", count: 4 - String(id, radix: 16).count) + String(id, radix: 16, uppercase: true)
        if let name = table[id]?.name ?? unsupportedNames[id] { return "\(name) (\(hex))" }
        return hex
    }

    /// Suites seen in the wild that swift-crypto cannot open (no CCM, 3DES or RC4): named in messages.
    static let unsupportedNames: [UInt16: String] = [
        0x1304: "TLS_AES_128_CCM_SHA256", 0x1305: "TLS_AES_128_CCM_8_SHA256",
        0xC09C: "TLS_RSA_WITH_AES_128_CCM", 0xC09D: "TLS_RSA_WITH_AES_256_CCM",
        0xC0AC: "TLS_ECDHE_ECDSA_WITH_AES_128_CCM", 0xC0AD: "TLS_ECDHE_ECDSA_WITH_AES_256_CCM",
        0x000A: "TLS_RSA_WITH_3DES_EDE_CBC_SHA", 0xC012: "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
        0x0004: "TLS_RSA_WITH_RC4_128_MD5", 0x0005: "TLS_RSA_WITH_RC4_128_SHA",
        0xC011: "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
        0x0041: "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA", 0x0084: "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA",
    ]

    static let table: [UInt16: CipherSuite] = {
        var t: [UInt16: CipherSuite] = [:]
        func add(_ id: UInt16, _ name: String, _ c: BulkCipher, _ m: RecordMAC, _ h: SuiteHash, tls13: Bool = false) {
            t[id] = CipherSuite(id: id, name: name, cipher: c, mac: m, hash: h, isTLS13: tls13)
        }
        // TLS 1.3 (RFC 8446 B.4). 0x1304/0x1305 (CCM) are not in swift-crypto.
        add(0x1301, "TLS_AES_128_GCM_SHA256", .aes128GCM, .none, .sha256, tls13: true)
        add(0x1302, "TLS_AES_256_GCM_SHA384", .aes256GCM, .none, .sha384, tls13: true)
        add(0x1303, "TLS_CHACHA20_POLY1305_SHA256", .chaCha20Poly1305, .none, .sha256, tls13: true)
        // TLS 1.2 AES-GCM (RFC 5288, RFC 5289)
        add(0xC02B, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", .aes128GCM, .none, .sha256)
        add(0xC02C, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", .aes256GCM, .none, .sha384)
        add(0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", .aes128GCM, .none, .sha256)
        add(0xC030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", .aes256GCM, .none, .sha384)
        add(0x009C, "TLS_RSA_WITH_AES_128_GCM_SHA256", .aes128GCM, .none, .sha256)
        add(0x009D, "TLS_RSA_WITH_AES_256_GCM_SHA384", .aes256GCM, .none, .sha384)
        add(0x009E, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", .aes128GCM, .none, .sha256)
        add(0x009F, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", .aes256GCM, .none, .sha384)
        // TLS 1.2 ChaCha20-Poly1305 (RFC 7905)
        add(0xCCA8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", .chaCha20Poly1305, .none, .sha256)
        add(0xCCA9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", .chaCha20Poly1305, .none, .sha256)
        add(0xCCAA, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", .chaCha20Poly1305, .none, .sha256)
        // TLS 1.2 AES-CBC. "_SHA" suites: HMAC-SHA1 record MAC but the SHA-256 PRF in TLS 1.2.
        add(0xC009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", .aes128CBC, .hmacSHA1, .sha256)
        add(0xC00A, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", .aes256CBC, .hmacSHA1, .sha256)
        add(0xC013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", .aes128CBC, .hmacSHA1, .sha256)
        add(0xC014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", .aes256CBC, .hmacSHA1, .sha256)
        add(0xC023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", .aes128CBC, .hmacSHA256, .sha256)
        add(0xC024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", .aes256CBC, .hmacSHA384, .sha384)
        add(0xC027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", .aes128CBC, .hmacSHA256, .sha256)
        add(0xC028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", .aes256CBC, .hmacSHA384, .sha384)
        add(0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA", .aes128CBC, .hmacSHA1, .sha256)
        add(0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA", .aes256CBC, .hmacSHA1, .sha256)
        add(0x003C, "TLS_RSA_WITH_AES_128_CBC_SHA256", .aes128CBC, .hmacSHA256, .sha256)
        add(0x003D, "TLS_RSA_WITH_AES_256_CBC_SHA256", .aes256CBC, .hmacSHA256, .sha256)
        add(0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA", .aes128CBC, .hmacSHA1, .sha256)
        add(0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", .aes256CBC, .hmacSHA1, .sha256)
        add(0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256", .aes128CBC, .hmacSHA256, .sha256)
        add(0x006B, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256", .aes256CBC, .hmacSHA256, .sha256)
        return t
    }()
}
