import CSMTPScan

/// Standard base64 (RFC 4648, with padding): JSON `raw` fields, scenario `-base64` fields, AUTH.
/// Both directions run on the C kernels in `CSMTPScan`.
public enum Base64 {
    /// The encoded text of `bytes`.
    public static func encode(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBytes { encode($0) }
    }

    public static func encode(_ bytes: UnsafeRawBufferPointer) -> String {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return "" }
        return String(unsafeUninitializedCapacity: (bytes.count + 2) / 3 * 4) { out in
            smtp_base64_encode(base, bytes.count, out.baseAddress!)
        }
    }

    /// Decodes standard base64 (blanks and line breaks are skipped); `nil` for anything else
    /// (characters outside the alphabet, bad padding).
    public static func decode(_ text: String) -> [UInt8]? {
        var text = text
        return text.withUTF8 { input -> [UInt8]? in
            guard let base = input.baseAddress, !input.isEmpty else { return [] }
            var out = [UInt8](repeating: 0, count: input.count / 4 * 3 + 3)
            let written = out.withUnsafeMutableBytes { smtp_base64_decode(base, input.count, $0.baseAddress!) }
            guard written >= 0 else { return nil }
            out.removeLast(out.count - written)
            return out
        }
    }
}
