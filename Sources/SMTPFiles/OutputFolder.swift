import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The folder given with `-o`: created if missing, and the only place files are written.
///
/// Files are written as sessions end, but into a hidden staging folder inside it, created afresh
/// and with `O_EXCL | O_NOFOLLOW`, so that nothing planted in the folder (a symbolic link, say) can
/// redirect a write. ``commit()`` moves them into place at the end, and refuses (leaving the folder
/// as it was) when a file of the same name is already there, unless replacing was asked for.
/// Names come from ``safeName(_:)`` or from numbers, never raw from the input.
public final class OutputFolder {
    /// Files that already exist, which replacing was not asked for. Nothing was written.
    public struct Conflict: Error, Sendable {
        public var existing: [String]
    }

    public let path: String
    let replaceExisting: Bool
    let staging: String
    /// Names staged so far, in the order they were created.
    public private(set) var names: [String] = []
    var committed = false

    /// Creates `path` (and its parents) if missing, and a staging folder inside it.
    /// - Parameter replaceExisting: let ``commit()`` replace files that already exist.
    public init(path: String, replaceExisting: Bool) throws(FileError) {
        self.path = path
        self.replaceExisting = replaceExisting
        try Self.createFolder(path)
        let (made, code) = Platform.makeTemporaryDirectory(in: path, prefix: ".smtptape-staging-")
        guard let made else { throw FileError(path: path, message: "cannot write into the folder: \(Platform.errorText(code))") }
        staging = made
    }

    deinit {
        if !committed { discard() }
    }

    /// Creates `path` and its parents; an existing folder is fine, anything else there is not.
    public static func createFolder(_ path: String) throws(FileError) {
        switch Platform.followedEntry(path) {
        case .directory: return
        case .missing: break
        default: throw FileError(path: path, message: "exists and is not a folder")
        }
        var partial = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            partial += "/" + component
            if let code = Platform.makeDirectory(partial) {
                throw FileError(path: path, message: "cannot create folder: \(Platform.errorText(code))")
            }
        }
    }

    /// Whether `name` is a plain file name: not empty, no `/`, not starting with a dot.
    public static func isPlainName(_ name: String) -> Bool {
        !name.isEmpty && !name.contains("/") && !name.hasPrefix(".") && !name.contains("\0")
    }

    /// Creates the staged file `name` for writing. It must be new.
    public func create(_ name: String) throws(FileError) -> OutputFile {
        guard Self.isPlainName(name) else { throw FileError(path: name, message: "not a plain file name") }
        let staged = staging + "/" + name
        do {
            let descriptor = try FileDescriptor.open(
                staged, .writeOnly, options: [.create, .exclusiveCreate, .noFollow, .closeOnExec],
                permissions: [.ownerReadWrite, .groupRead, .otherRead])
            names.append(name)
            return OutputFile(descriptor: descriptor, path: path + "/" + name)
        } catch Errno.fileExists {
            throw FileError(path: path + "/" + name, message: "written twice in one run")
        } catch {
            throw FileError(path: path + "/" + name, message: "cannot create: \(error)")
        }
    }

    /// Renames a staged file (before ``commit()``).
    public func rename(staged from: String, to: String) throws(FileError) {
        guard Self.isPlainName(to), let index = names.firstIndex(of: from) else {
            throw FileError(path: to, message: "not a plain file name")
        }
        guard !names.contains(to) else { throw FileError(path: path + "/" + to, message: "written twice in one run") }
        if let code = Platform.rename(staging + "/" + from, staging + "/" + to) {
            throw FileError(path: path + "/" + to, message: "cannot rename: \(Platform.errorText(code))")
        }
        names[index] = to
    }

    /// The staged files whose names already exist in the folder.
    public var conflicts: [String] {
        names.filter { Platform.entry(path + "/" + $0) != .missing }.map { path + "/" + $0 }
    }

    /// Moves every staged file into the folder and returns their paths, in the order they were
    /// created. Throws ``Conflict`` (after discarding everything staged) when a name exists
    /// already and replacing was not asked for.
    @discardableResult
    public func commit() throws -> [String] {
        let existing = conflicts
        if !existing.isEmpty, !replaceExisting {
            discard()
            throw Conflict(existing: existing)
        }
        var moved: [String] = []
        for name in names {
            let target = path + "/" + name
            if Platform.entry(target) == .directory {
                discard()
                throw FileError(path: target, message: "is a folder; it cannot be replaced by a file")
            }
            if let code = Platform.rename(staging + "/" + name, target) {
                discard()
                throw FileError(path: target, message: "cannot move into place: \(Platform.errorText(code))")
            }
            moved.append(target)
        }
        names = []
        Platform.removeDirectory(staging)
        committed = true
        return moved
    }

    /// Moves the staged files `names` into the folder now, each one whole (for a long-running
    /// writer, such as a recording proxy, that must not lose finished files if it is killed).
    /// Without replacing, a file whose name exists is not moved, and ``Conflict`` names it.
    @discardableResult
    public func publish(_ published: [String]) throws -> [String] {
        var moved: [String] = []
        var existing: [String] = []
        for name in published {
            guard let index = names.firstIndex(of: name) else { continue }
            names.remove(at: index)
            let staged = staging + "/" + name, target = path + "/" + name
            if replaceExisting {
                if let code = Platform.rename(staged, target) {
                    Platform.removeFile(staged)
                    throw FileError(path: target, message: "cannot move into place: \(Platform.errorText(code))")
                }
            } else if let code = Platform.linkNoReplace(staged, target) {
                Platform.removeFile(staged)
                if code == EEXIST { existing.append(target); continue }
                throw FileError(path: target, message: "cannot move into place: \(Platform.errorText(code))")
            } else {
                Platform.removeFile(staged)
            }
            moved.append(target)
        }
        if !existing.isEmpty { throw Conflict(existing: existing) }
        return moved
    }

    /// The paths of files already in the folder whose names pass `test` (sorted): those a
    /// command that publishes as it goes would meet, checked before it begins.
    public func existing(where test: (String) -> Bool) -> [String] {
        Platform.names(in: path).filter(test).sorted().map { path + "/" + $0 }
    }

    /// Removes everything staged; the folder is left as it was (apart from folders created for it).
    public func discard() {
        for name in Platform.names(in: staging) { Platform.removeFile(staging + "/" + name) }
        Platform.removeDirectory(staging)
        names = []
        committed = true
    }

    /// Letters, digits, `.`, `-` and `_` only (anything else becomes `_`), never empty, never
    /// starting with a dot, at most 100 characters.
    public static func safeName(_ text: String) -> String {
        var name = String(text.unicodeScalars.map { isSafe($0) ? Character($0) : "_" })
        while name.hasPrefix(".") { name = "_" + name.dropFirst() }
        return name.isEmpty ? "capture" : String(name.prefix(100))
    }

    /// Whether `name` is what ``safeName(_:)`` makes: letters, digits, `.`, `-` and `_` only,
    /// not empty, not starting with a dot. Such a name stays inside its folder on every system.
    public static func isSafeName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first != "." else { return false }
        return name.unicodeScalars.allSatisfy(isSafe)
    }

    static func isSafe(_ scalar: Unicode.Scalar) -> Bool {
        scalar.isASCII && (("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar) || "._-".unicodeScalars.contains(scalar))
    }
}

/// A file being written: bytes in order, and patches at known offsets.
public final class OutputFile {
    let descriptor: FileDescriptor
    /// Where the file will be once its folder is committed.
    public let path: String
    public private(set) var size = 0
    var closed = false

    /// The open file descriptor (for a writer that buffers on its own, like a transcript).
    public var rawDescriptor: Int32 { descriptor.rawValue }

    init(descriptor: FileDescriptor, path: String) {
        self.descriptor = descriptor
        self.path = path
    }

    deinit { close() }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(FileError) {
        do {
            _ = try descriptor.writeAll(bytes)
            size += bytes.count
        } catch {
            throw FileError(path: path, message: "cannot write: \(error)")
        }
    }

    public func write(_ bytes: [UInt8]) throws(FileError) {
        do {
            _ = try bytes.withUnsafeBytes { try descriptor.writeAll($0) }
            size += bytes.count
        } catch {
            throw FileError(path: path, message: "cannot write: \(error)")
        }
    }

    /// Overwrites bytes already written, at `offset`.
    public func patch(_ bytes: [UInt8], at offset: Int) throws(FileError) {
        do {
            _ = try bytes.withUnsafeBytes { try descriptor.writeAll(toAbsoluteOffset: Int64(offset), $0) }
        } catch {
            throw FileError(path: path, message: "cannot write: \(error)")
        }
    }

    public func close() {
        guard !closed else { return }
        closed = true
        try? descriptor.close()
    }
}

/// Files named directly by a flag (`--report`, `--junit`, `--tls-ca-out`, ...): written to a
/// temporary name beside them and renamed, so that they are simply replaced, never half-written.
public enum ReplacedFile {
    public static func write(_ bytes: [UInt8], to path: String) throws(FileError) {
        let temporary = path + ".smtptape-tmp"
        Platform.removeFile(temporary)
        do {
            let descriptor = try FileDescriptor.open(
                temporary, .writeOnly, options: [.create, .exclusiveCreate, .noFollow, .closeOnExec],
                permissions: [.ownerReadWrite, .groupRead, .otherRead])
            defer { try? descriptor.close() }
            _ = try bytes.withUnsafeBytes { try descriptor.writeAll($0) }
        } catch {
            Platform.removeFile(temporary)
            throw FileError(path: path, message: "cannot write: \(error)")
        }
        if let code = Platform.rename(temporary, path) {
            Platform.removeFile(temporary)
            throw FileError(path: path, message: "cannot write: \(Platform.errorText(code))")
        }
    }

    /// Reads a whole regular file of at most `limit` bytes.
    public static func read(_ path: String, limit: Int) throws(FileError) -> [UInt8] {
        let source = try InputSource(path: path)
        return try source.readAll(limit: limit)
    }
}

extension OutputFolder {
    /// Overwrites bytes of a staged file at `offset` (before ``commit()``), such as a digest known
    /// only once its input was read to the end.
    public func patch(staged name: String, _ bytes: [UInt8], at offset: Int) throws(FileError) {
        guard names.contains(name) else { throw FileError(path: path + "/" + name, message: "not written in this run") }
        do {
            let descriptor = try FileDescriptor.open(staging + "/" + name, .writeOnly, options: [.noFollow, .closeOnExec])
            defer { try? descriptor.close() }
            _ = try bytes.withUnsafeBytes { try descriptor.writeAll(toAbsoluteOffset: Int64(offset), $0) }
        } catch {
            throw FileError(path: path + "/" + name, message: "cannot write: \(error)")
        }
    }

    /// Writes a whole staged file.
    public func write(_ bytes: [UInt8], to name: String) throws(FileError) {
        let file = try create(name)
        defer { file.close() }
        try file.write(bytes)
    }
}
