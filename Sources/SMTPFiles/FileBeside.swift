import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file another file names by its plain name, in that file's own folder: a message kept beside
/// its scenario (`message-file: NAME`).
///
/// Only a regular file directly in the folder is read. The name must be safe
/// (``OutputFolder/isSafeName(_:)``), and a symbolic link is refused: a scenario from elsewhere
/// must not make smtptape read, and a replay then quote to its client, a file outside its folder.
public enum FileBeside {
    /// The folder that holds `path` (`.` for a bare name); `nil` for standard input (`-`).
    public static func folder(of path: String) -> String? {
        if path == "-" { return nil }
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let folder = path[..<slash]
        return folder.isEmpty ? "/" : String(folder)
    }

    /// The bytes of the regular file `name` in `folder`, refusing more than `limit` bytes.
    /// The error's message says what is wrong as a predicate (`is a symbolic link`, `is 2048
    /// bytes, over the limit of 1024 bytes`), so that it can follow the name; its
    /// ``FileError/path`` has the path.
    public static func read(_ name: String, in folder: String, limit: Int) throws(FileError) -> [UInt8] {
        let path = folder == "/" ? "/" + name : folder + "/" + name
        guard OutputFolder.isSafeName(name) else { throw FileError(path: path, message: "is not a plain file name") }
        let descriptor: FileDescriptor
        do {
            // Non-blocking, so that a FIFO planted under the name cannot hang the reader.
            descriptor = try FileDescriptor.open(path, .readOnly, options: [.noFollow, .nonBlocking, .closeOnExec])
        } catch Errno.noSuchFileOrDirectory {
            throw FileError(path: path, message: "does not exist", isMissing: true)
        } catch Errno.tooManySymbolicLinkLevels {
            throw FileError(path: path, message: "is a symbolic link (only a regular file is read)")
        } catch Errno.permissionDenied {
            throw FileError(path: path, message: "cannot be read: permission denied")
        } catch {
            throw FileError(path: path, message: "cannot be opened: \(error)")
        }
        defer { try? descriptor.close() }
        var info = stat()
        guard fstat(descriptor.rawValue, &info) == 0 else {
            throw FileError(path: path, message: "cannot be read: \(Platform.errorText(errno))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw FileError(path: path, message: info.st_mode & S_IFMT == S_IFDIR ? "is a folder, not a file" : "is not a regular file")
        }
        let size = Int(info.st_size)
        guard size <= limit else {
            throw FileError(path: path, message: "is \(size) bytes, over the limit of \(limit) bytes")
        }
        // Read to the end (the file may have changed since fstat), never past the limit.
        var bytes = [UInt8](repeating: 0, count: size + 1)
        var count = 0
        while true {
            if count == bytes.count {
                guard bytes.count <= limit else { throw FileError(path: path, message: "grew over the limit of \(limit) bytes while being read") }
                bytes += [UInt8](repeating: 0, count: min(max(bytes.count, 64 << 10), limit + 1 - bytes.count))
            }
            let got: Int
            do {
                got = try bytes.withUnsafeMutableBytes { try descriptor.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[count...])) }
            } catch {
                throw FileError(path: path, message: "cannot be read: \(error)")
            }
            if got == 0 { break }
            count += got
        }
        bytes.removeSubrange(count...)
        return bytes
    }
}
