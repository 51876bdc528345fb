import Crypto
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A problem with a file, in one line: `PATH: what is wrong`.
public struct FileError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var message: String
    /// Whether the file is missing (rather than unreadable or of the wrong kind).
    public var isMissing: Bool

    public init(path: String, message: String, isMissing: Bool = false) {
        self.path = path
        self.message = message
        self.isMissing = isMissing
    }

    public var description: String { "\(path): \(message)" }
}

/// One input named on the command line, read once, in order, from its first byte: a file, or a
/// pipe (`-` for standard input, `/dev/stdin`, `<(...)`), which cannot be read twice.
///
/// The first bytes are kept (up to ``keepLimit``), so that a reader may look at them to tell a
/// capture from a scenario and start over (``rewind()``). Every byte is hashed as it is read, so
/// the SHA-256 of the whole input is known at the end without a second pass (``finishDigest()``).
public final class InputSource {
    /// The path as the user gave it (`-` for standard input).
    public let path: String
    /// The name outputs use: the file's last path component, `stdin` for standard input.
    public let name: String
    /// The size of a regular file (for progress); `nil` for pipes.
    public let size: Int?

    let descriptor: FileDescriptor
    let ownsDescriptor: Bool
    /// Bytes read from the start, while reading can still start over.
    var kept: [UInt8] = []
    var keptComplete = true
    /// The reader's position in the stream.
    var position = 0
    /// How many bytes came from the descriptor (and were hashed).
    public private(set) var consumed = 0
    /// Hashes every byte as it is read, when asked to (``finishDigest()``).
    var hasher: SHA256?
    var reachedEnd = false
    /// The first read error, if any.
    public private(set) var readError: FileError?
    /// A regular file handed to the C library on a duplicate descriptor: it reads on its own, and
    /// the file offset says how far.
    var handedOff = false

    /// How many of the first bytes are kept for ``rewind()``.
    public static let keepLimit = 1 << 20

    /// Opens `path`; `-` is standard input. With `hashing`, the SHA-256 of every byte read is
    /// kept for ``finishDigest()``.
    public init(path: String, hashing: Bool = false) throws(FileError) {
        self.path = path
        hasher = hashing ? SHA256() : nil
        if path == "-" {
            name = "stdin"
            descriptor = .standardInput
            ownsDescriptor = false
        } else {
            name = path.split(separator: "/").last.map(String.init) ?? path
            do {
                descriptor = try FileDescriptor.open(path, .readOnly, options: [.closeOnExec])
            } catch Errno.noSuchFileOrDirectory {
                throw FileError(path: path, message: "no such file", isMissing: true)
            } catch Errno.permissionDenied {
                throw FileError(path: path, message: "permission denied")
            } catch {
                throw FileError(path: path, message: "cannot open: \(error)")
            }
            ownsDescriptor = true
        }
        var info = stat()
        if fstat(descriptor.rawValue, &info) == 0 {
            if info.st_mode & S_IFMT == S_IFDIR {
                if ownsDescriptor { try? descriptor.close() }
                throw FileError(path: path, message: "is a directory, not a file")
            }
            size = info.st_mode & S_IFMT == S_IFREG ? Int(info.st_size) : nil
        } else {
            size = nil
        }
    }

    deinit {
        if ownsDescriptor { try? descriptor.close() }
    }

    /// The first `count` bytes (fewer if the input is shorter), without moving the reader.
    /// Only meaningful before ``keepLimit`` bytes have been read.
    public func peek(_ count: Int) -> [UInt8] {
        while keptComplete, kept.count < count, !reachedEnd {
            var chunk = [UInt8](repeating: 0, count: min(64 << 10, Self.keepLimit - kept.count))
            let got = chunk.withUnsafeMutableBytes { readDescriptor(into: $0) }
            if got <= 0 { break }
            kept += chunk[0..<got]
        }
        return Array(kept.prefix(count))
    }

    /// Starts reading again from the first byte; `false` when too much was read to start over.
    /// A regular file that is not being hashed can always start over.
    @discardableResult
    public func rewind() -> Bool {
        if size != nil, hasher == nil, Platform.seekToStart(descriptor.rawValue) {
            kept = []
            keptComplete = true
            consumed = 0
            position = 0
            reachedEnd = false
            handedOff = false
            return true
        }
        guard keptComplete, !handedOff else { return false }
        position = 0
        return true
    }

    /// How far the input has been read (for progress).
    public var offset: Int { handedOff ? Platform.offset(of: descriptor.rawValue) : position }

    /// Reads up to `buffer.count` bytes at the reader's position. Returns 0 at the end, -1 on error.
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard buffer.count > 0 else { return 0 }
        if position < consumed {
            // Bytes read before and kept: serve them again.
            guard keptComplete else { return -1 }
            let count = min(buffer.count, kept.count - position)
            kept.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[position..<(position + count)])) }
            position += count
            return count
        }
        let got = readDescriptor(into: buffer)
        guard got > 0 else { return got }
        if keptComplete {
            if kept.count + got <= Self.keepLimit {
                kept.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<got]))
            } else {
                keptComplete = false
                kept = []
            }
        }
        position += got
        return got
    }

    /// Reads everything from the reader's position to the end, refusing more than `limit` bytes.
    public func readAll(limit: Int) throws(FileError) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let got = chunk.withUnsafeMutableBytes { read(into: $0) }
            if got < 0 { throw readError ?? FileError(path: path, message: "cannot read") }
            if got == 0 { return bytes }
            bytes += chunk[0..<got]
            if bytes.count > limit { throw FileError(path: path, message: "larger than \(limit) bytes") }
        }
    }

    /// Reads whatever is left (so that the digest covers the whole input) and returns the
    /// SHA-256 of every byte, lower-case hex.
    public func finishDigest() -> String {
        var chunk = [UInt8](repeating: 0, count: 256 << 10)
        while !reachedEnd {
            let got = chunk.withUnsafeMutableBytes { readDescriptor(into: $0) }
            if got <= 0 { break }
        }
        guard let digest = hasher?.finalize() else { preconditionFailure("finishDigest() needs an input opened with hashing") }
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in digest {
            out.append(hex[Int(byte >> 4)])
            out.append(hex[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A C stream over this input (for libpcap), reading from the reader's position. A regular
    /// file that is not being hashed is given to the C library directly (no copy through this
    /// object); anything else (a pipe, or an input being hashed) is read through ``read(into:)``.
    public func cStream() -> UnsafeMutablePointer<FILE>? {
        if size != nil, hasher == nil, let file = Platform.stream(duplicating: descriptor.rawValue, at: position) {
            handedOff = true
            return file
        }
        guard let file = Platform.stream(reading: self) else { return nil }
        // Large reads (libpcap reads whole packets) go through the stream's buffer: make it large.
        setvbuf(file, nil, _IOFBF, 256 << 10)
        return file
    }

    func readDescriptor(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard !reachedEnd else { return 0 }
        do {
            let got = try descriptor.read(into: buffer)  // retries when interrupted
            if got == 0 { reachedEnd = true }
            consumed += got
            hasher?.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<got]))
            return got
        } catch {
            if readError == nil { readError = FileError(path: path, message: "cannot read: \(error)") }
            return -1
        }
    }
}
