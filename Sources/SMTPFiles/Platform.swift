// The one place with platform-specific code: POSIX calls that swift-system does not wrap
// (directories, renames, links) and the bridge from an input to a C `FILE *` for libpcap.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CInputStream
import SystemPackage

enum Platform {
    /// What is at `path`, without following a final symbolic link.
    enum Entry { case missing, file, directory, link, other }

    static func entry(_ path: String) -> Entry {
        var info = stat()
        guard lstat(path, &info) == 0 else { return .missing }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return .file
        case S_IFDIR: return .directory
        case S_IFLNK: return .link
        default: return .other
        }
    }

    /// What is at `path`, following links.
    static func followedEntry(_ path: String) -> Entry {
        var info = stat()
        guard stat(path, &info) == 0 else { return .missing }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return .file
        case S_IFDIR: return .directory
        default: return .other
        }
    }

    static func makeDirectory(_ path: String) -> Int32? {
        mkdir(path, 0o755) == 0 || errno == EEXIST ? nil : errno
    }

    /// A new, empty folder inside `parent`, readable only by us.
    static func makeTemporaryDirectory(in parent: String, prefix: String) -> (String?, Int32) {
        var template = Array((parent + "/" + prefix + "XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else { return (nil, errno) }
        return (String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self), 0)
    }

    /// Renames within one file system; replaces a file (or a link, not what it points to) at `to`.
    static func rename(_ from: String, _ to: String) -> Int32? {
        posixRename(from, to) == 0 ? nil : errno
    }

    /// Gives `from` the name `to` as well, failing (EEXIST) when `to` exists: a move that never
    /// replaces, once `from` is removed.
    static func linkNoReplace(_ from: String, _ to: String) -> Int32? {
        link(from, to) == 0 ? nil : errno
    }

    static func removeFile(_ path: String) { unlink(path) }
    static func removeDirectory(_ path: String) { rmdir(path) }

    /// The names in a folder (without `.` and `..`).
    static func names(in path: String) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != ".", name != ".." { names.append(name) }
        }
        return names
    }

    static func errorText(_ code: Int32) -> String { String(cString: strerror(code)) }

    static var lastError: Int32 { errno }

    /// A C stream reading a regular file from `offset`, on a duplicate of its descriptor (which
    /// shares the file offset): the C library reads straight into the caller's buffer.
    static func stream(duplicating descriptor: Int32, at offset: Int) -> UnsafeMutablePointer<FILE>? {
        guard lseek(descriptor, off_t(offset), SEEK_SET) == off_t(offset) else { return nil }
        let copy = dup(descriptor)
        guard copy >= 0 else { return nil }
        guard let file = fdopen(copy, "rb") else {
            close(copy)
            return nil
        }
        return file
    }

    /// Where a descriptor's file offset is.
    static func offset(of descriptor: Int32) -> Int { Int(lseek(descriptor, 0, SEEK_CUR)) }

    /// Moves a regular file's offset back to its start.
    static func seekToStart(_ descriptor: Int32) -> Bool { lseek(descriptor, 0, SEEK_SET) == 0 }

    /// A C stream whose reads come from `source` (for libpcap, which reads through `FILE *`).
    /// `source` stays retained until the stream is closed.
    static func stream(reading source: InputSource) -> UnsafeMutablePointer<FILE>? {
        let context = Unmanaged.passRetained(source).toOpaque()
        let file = smtp_stream_open(context, { context, buffer, size in
            guard let context, let buffer else { return -1 }
            let source = Unmanaged<InputSource>.fromOpaque(context).takeUnretainedValue()
            return source.read(into: UnsafeMutableRawBufferPointer(start: buffer, count: size))
        }, { context in
            if let context { Unmanaged<InputSource>.fromOpaque(context).release() }
        })
        if file == nil { Unmanaged<InputSource>.fromOpaque(context).release() }
        return file
    }
}

#if canImport(Glibc)
private func posixRename(_ from: String, _ to: String) -> Int32 { Glibc.rename(from, to) }
#elseif canImport(Darwin)
private func posixRename(_ from: String, _ to: String) -> Int32 { Darwin.rename(from, to) }
#endif

/// Writing to standard output and standard error (or any descriptor given).
public enum StandardStream {
    /// Writes all of `bytes`; `false` when the descriptor refused (a closed pipe, say).
    @discardableResult
    public static func write(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32) -> Bool {
        do {
            _ = try FileDescriptor(rawValue: descriptor).writeAll(bytes)
            return true
        } catch {
            return false
        }
    }

    public static func isTerminal(_ descriptor: Int32) -> Bool { isatty(descriptor) != 0 }
}
