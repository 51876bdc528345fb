/// AUTH credentials and how smtptape hides them (RFC 4954).
///
/// The client's responses in an AUTH exchange and an initial response on the AUTH line are
/// secrets (PLAIN carries the password in base64; LOGIN the user name and password; CRAM-MD5 and
/// XOAUTH2 a digest or a bearer token). Every output replaces them with ``placeholder`` unless the
/// user passes `--show-secrets`.
public enum Secrets {
    /// The one fixed token that stands for a redacted credential, in every output.
    public static let placeholder = "[REDACTED]"
    public static let placeholderBytes: [UInt8] = Array(placeholder.utf8)
}

extension Secrets {
    /// `raw` with the bytes in `secret` replaced by the placeholder.
    public static func redact(_ raw: UnsafeRawBufferPointer, secret: Range<Int>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        out.append(contentsOf: raw[0..<secret.lowerBound])
        out.append(contentsOf: placeholderBytes)
        out.append(contentsOf: raw[secret.upperBound...])
        return out
    }
}
