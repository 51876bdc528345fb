#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The folder given with `-o`: created if missing, and the only place files are written. Names
/// inside it come from ``safeName(_:)`` or are built from numbers, never from capture contents.
public struct OutputFolder: Sendable {
    public struct Failure: Error, CustomStringConvertible, Sendable { public var description: String }

    public let path: String

    public init(path: String) throws(Failure) {
        try Self.create(path)
        self.path = path
    }

    /// Creates `path` and its parents; an existing folder is fine, an existing file is not.
    public static func create(_ path: String) throws(Failure) {
        var info = stat()
        if stat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else { throw Failure(description: "\(path): exists and is not a folder") }
            return
        }
        var partial = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            partial += "/" + component
            if mkdir(partial, 0o755) != 0, errno != EEXIST {
                throw Failure(description: "\(path): cannot create folder: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Writes `text` to `name` inside the folder and returns the path. `name` must be a plain
    /// file name (see ``safeName(_:)``).
    public func write(_ text: String, to name: String) throws(Failure) -> String {
        guard !name.contains("/"), name != ".", name != "..", !name.isEmpty else {
            throw Failure(description: "\(name): not a plain file name")
        }
        let target = path + "/" + name
        guard let file = fopen(target, "wb") else { throw Failure(description: "\(target): cannot create: \(String(cString: strerror(errno)))") }
        defer { fclose(file) }
        var text = text
        let ok = text.withUTF8 { fwrite($0.baseAddress, 1, $0.count, file) == $0.count }
        guard ok else { throw Failure(description: "\(target): cannot write") }
        return target
    }

    /// Letters, digits, `.`, `-` and `_` only (anything else becomes `_`), never empty, never
    /// starting with a dot, at most 100 characters.
    public static func safeName(_ text: String) -> String {
        var name = String(text.unicodeScalars.map { scalar -> Character in
            let allowed = scalar.isASCII && (("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar) || "._-".unicodeScalars.contains(scalar))
            return allowed ? Character(scalar) : "_"
        })
        while name.hasPrefix(".") { name = "_" + name.dropFirst() }
        return name.isEmpty ? "capture" : String(name.prefix(100))
    }
}
