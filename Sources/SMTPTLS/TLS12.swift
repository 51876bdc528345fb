// TLS 1.2 (RFC 5246): PRF, key block, and record decryption for AES-GCM (RFC 5288),
// ChaCha20-Poly1305 (RFC 7905) and AES-CBC with HMAC, MAC-then-encrypt or encrypt-then-MAC (RFC 7366).
import Crypto
import _CryptoExtras
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

public enum TLS12 {
    /// P_hash(secret, seed) = HMAC_hash(secret, A(1) + seed) + HMAC_hash(secret, A(2) + seed) + ...
    /// A(0) = seed, A(i) = HMAC_hash(secret, A(i-1)).
    static func pHash<H: HashFunction>(_: H.Type, secret: [UInt8], seed: [UInt8], count: Int) -> [UInt8] {
        let key = SymmetricKey(data: secret)
        var out: [UInt8] = []
        out.reserveCapacity(count + H.Digest.byteCount)
        var a = Array(HMAC<H>.authenticationCode(for: seed, using: key))
        while out.count < count {
            var h = HMAC<H>(key: key)
            h.update(data: a)
            h.update(data: seed)
            out += h.finalize()
            a = Array(HMAC<H>.authenticationCode(for: a, using: key))
        }
        return Array(out.prefix(count))
    }

    /// PRF(secret, label, seed) = P_<hash>(secret, label + seed); the hash is the suite's
    /// (SHA-256 unless the suite name ends in _SHA384).
    public static func prf(_ hash: SuiteHash, secret: [UInt8], label: String, seed: [UInt8], count: Int) -> [UInt8] {
        let labelSeed = Array(label.utf8) + seed
        switch hash {
        case .sha256: return pHash(SHA256.self, secret: secret, seed: labelSeed, count: count)
        case .sha384: return pHash(SHA384.self, secret: secret, seed: labelSeed, count: count)
        }
    }

    public struct KeyBlock: Sendable {
        public var clientMACKey: [UInt8], serverMACKey: [UInt8]
        public var clientKey: [UInt8], serverKey: [UInt8]
        public var clientIV: [UInt8], serverIV: [UInt8]
    }

    /// key_block = PRF(master_secret, "key expansion", server_random + client_random), cut as
    /// client_write_MAC_key, server_write_MAC_key, client_write_key, server_write_key,
    /// client_write_IV, server_write_IV (RFC 5246 6.3).
    public static func keyBlock(_ suite: CipherSuite, masterSecret: [UInt8],
                                clientRandom: [UInt8], serverRandom: [UInt8]) -> KeyBlock {
        let m = suite.mac.length, k = suite.cipher.keyLength, v = suite.fixedIVLength
        let block = prf(suite.hash, secret: masterSecret, label: "key expansion",
                        seed: serverRandom + clientRandom, count: 2 * (m + k + v))
        var at = 0
        func cut(_ n: Int) -> [UInt8] { defer { at += n }; return Array(block[at..<(at + n)]) }
        return KeyBlock(clientMACKey: cut(m), serverMACKey: cut(m), clientKey: cut(k), serverKey: cut(k),
                        clientIV: cut(v), serverIV: cut(v))
    }

    /// additional_data / MAC prefix = seq_num(8) || TLSCompressed.type || version(2) || length(2),
    /// written into `aad` (13 bytes, reused from record to record).
    static func additionalData(_ aad: inout [UInt8], sequence: UInt64, record: TLSRecord, plaintextLength: Int) {
        var s = sequence
        for i in stride(from: 7, through: 0, by: -1) { aad[i] = UInt8(truncatingIfNeeded: s); s >>= 8 }
        aad[8] = record.type
        aad[9] = UInt8(record.version >> 8); aad[10] = UInt8(record.version & 0xFF)
        aad[11] = UInt8(truncatingIfNeeded: plaintextLength >> 8); aad[12] = UInt8(truncatingIfNeeded: plaintextLength)
    }
}

/// TLS 1.2 AES-GCM (RFC 5288): nonce = salt(4, from the key block) || explicit_nonce(8, first bytes
/// of the record); record fragment = explicit_nonce || ciphertext || tag(16).
public final class TLS12GCMProtection {
    let key: SymmetricKey
    let cipher: BulkCipher
    var nonce: [UInt8]
    var aad = [UInt8](repeating: 0, count: 13)
    var scratch = Data()
    public var sequence: UInt64 = 0

    public init(cipher: BulkCipher, key: [UInt8], salt: [UInt8]) {
        precondition(salt.count == 4)
        self.cipher = cipher
        self.key = SymmetricKey(data: key)
        self.nonce = salt + [UInt8](repeating: 0, count: 8)
    }

    public func open(_ record: TLSRecord) throws -> Data {
        let f = record.fragment
        guard f.count >= 8 + 16 else { throw TLSParseError("GCM record too short") }
        for i in 0..<8 { nonce[4 + i] = f[f.startIndex + i] }
        TLS12.additionalData(&aad, sequence: sequence, record: record, plaintextLength: f.count - 24)
        let plain = try AEADProtection.open(cipher, key: key, nonce: nonce, sealed: UnsafeRawBufferPointer(rebasing: f[8...]), aad: aad, scratch: &scratch,
                                                 // the salt goes right before the explicit nonce
                                                 room: record.scratchBeforeFragment.map { $0 + 8 })
        sequence += 1
        return plain
    }
}

/// TLS 1.1/1.2 AES-CBC with HMAC. Fragment = IV(16) || CBC(content || MAC || padding || padding_length)
/// (MAC-then-encrypt), or IV(16) || CBC(content || padding || padding_length) || MAC (encrypt-then-MAC,
/// RFC 7366, when the ServerHello echoes extension 22).
public final class TLS12CBCProtection {
    let key: SymmetricKey
    let macKey: SymmetricKey
    let mac: RecordMAC
    let encryptThenMAC: Bool
    public var sequence: UInt64 = 0

    public init(key: [UInt8], macKey: [UInt8], mac: RecordMAC, encryptThenMAC: Bool) {
        self.key = SymmetricKey(data: key)
        self.macKey = SymmetricKey(data: macKey)
        self.mac = mac
        self.encryptThenMAC = encryptThenMAC
    }

    var header = [UInt8](repeating: 0, count: 13)

    func hmac(_ header: [UInt8], _ data: UnsafeRawBufferPointer) -> [UInt8] {
        func run<H: HashFunction>(_: H.Type) -> [UInt8] {
            var h = HMAC<H>(key: macKey)
            h.update(data: header)
            h.update(data: data)
            return Array(h.finalize())
        }
        switch mac {
        case .hmacSHA1: return run(Insecure.SHA1.self)
        case .hmacSHA256: return run(SHA256.self)
        case .hmacSHA384: return run(SHA384.self)
        case .none: return []
        }
    }

    public func open(_ record: TLSRecord) throws -> Data {
        let macLength = mac.length
        var f = record.fragment
        if encryptThenMAC {
            // MAC(MAC_write_key, seq_num + type + version + length + IV + ENC(...)), where length
            // counts IV + ciphertext (not the MAC). Checked before decrypting.
            guard f.count >= 16 + 16 + macLength else { throw TLSParseError("EtM record too short") }
            let received = UnsafeRawBufferPointer(rebasing: f[(f.count - macLength)...])
            f = UnsafeRawBufferPointer(rebasing: f[..<(f.count - macLength)])
            TLS12.additionalData(&header, sequence: sequence, record: record, plaintextLength: f.count)
            guard constantTimeEqual(hmac(header, f), received) else { throw TLSParseError("bad record MAC (EtM)") }
        }
        guard f.count >= 32, f.count % 16 == 0 else { throw TLSParseError("CBC record length not whole blocks") }
        let iv = try AES._CBC.IV(ivBytes: f[0..<16])
        // noPadding: true -- TLS padding is not PKCS#7 (n+1 bytes of value n, up to 255), so the
        // library's own unpadding would reject valid records.
        let plain = try AES._CBC.decrypt(UnsafeRawBufferPointer(rebasing: f[16...]), using: key, iv: iv, noPadding: true)
        return try plain.withUnsafeBytes { plain throws -> Data in
            let padLength = Int(plain[plain.count - 1])
            guard plain.count >= padLength + 1 + (encryptThenMAC ? 0 : macLength) else { throw TLSParseError("bad padding length") }
            var badPadding: UInt8 = 0
            for b in plain[(plain.count - 1 - padLength)...] { badPadding |= b ^ UInt8(padLength) }
            guard badPadding == 0 else { throw TLSParseError("bad padding bytes") }
            let unpadded = UnsafeRawBufferPointer(rebasing: plain[..<(plain.count - 1 - padLength)])
            if encryptThenMAC {
                sequence += 1
                return Data(unpadded)
            }
            let content = UnsafeRawBufferPointer(rebasing: unpadded[..<(unpadded.count - macLength)])
            let received = UnsafeRawBufferPointer(rebasing: unpadded[(unpadded.count - macLength)...])
            TLS12.additionalData(&header, sequence: sequence, record: record, plaintextLength: content.count)
            guard constantTimeEqual(hmac(header, content), received) else { throw TLSParseError("bad record MAC") }
            sequence += 1
            return Data(content)
        }
    }
}

func constantTimeEqual(_ a: [UInt8], _ b: UnsafeRawBufferPointer) -> Bool {
    guard a.count == b.count else { return false }
    var d: UInt8 = 0
    for (x, y) in zip(a, b) { d |= x ^ y }
    return d == 0
}
