#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A point in time with nanosecond resolution, as captures record it (UTC, since 1970).
public struct Timestamp: Hashable, Comparable, Sendable {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }
    /// The largest number of seconds either side of 1970 a timestamp holds (about the year 2255);
    /// captures with wilder timestamps are clamped rather than trusted.
    public static let secondsLimit: Int64 = 9_000_000_000

    /// The current wall-clock time.
    public static func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(seconds: Int64(spec.tv_sec), nanoseconds: Int64(spec.tv_nsec))
    }

    public init(seconds: Int64, nanoseconds: Int64) {
        let clamped = max(-Self.secondsLimit, min(Self.secondsLimit, seconds))
        self.nanoseconds = clamped * 1_000_000_000 + max(-999_999_999, min(999_999_999, nanoseconds))
    }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    public var seconds: Int64 { nanoseconds >= 0 ? nanoseconds / 1_000_000_000 : (nanoseconds - 999_999_999) / 1_000_000_000 }

    /// RFC 3339 in UTC with microseconds: `2026-11-29T01:27:53.123456Z`.
    public var rfc3339: String {
        var out: [UInt8] = []
        appendRFC3339(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Writes ``rfc3339`` into a byte buffer without building a `String`.
    public func appendRFC3339(to out: inout [UInt8]) {
        let secs = seconds
        let micros = Int((nanoseconds - secs * 1_000_000_000) / 1000)
        var days = Int(secs / 86400)
        var rem = Int(secs - Int64(days) * 86400)
        if rem < 0 { rem += 86400; days -= 1 }
        // Civil-from-days (Howard Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func digits(_ value: Int, _ width: Int) {
            var divisor = 1
            for _ in 1..<width { divisor *= 10 }
            var v = value
            while divisor > 0 {
                out.append(UInt8(0x30 + (v / divisor) % 10))
                v %= divisor
                divisor /= 10
            }
        }
        digits(year, 4); out.append(0x2D); digits(month, 2); out.append(0x2D); digits(day, 2)
        out.append(0x54)
        digits(rem / 3600, 2); out.append(0x3A); digits(rem / 60 % 60, 2); out.append(0x3A); digits(rem % 60, 2)
        out.append(0x2E); digits(micros, 6); out.append(0x5A)
    }

    /// Parses RFC 3339 in UTC as smtptape writes it: `2026-11-29T01:37:40.030560Z` (up to nanoseconds).
    public init?(rfc3339 text: String) {
        guard text.hasSuffix("Z") else { return nil }
        let parts = text.dropLast().split(separator: "T")
        guard parts.count == 2 else { return nil }
        let date = parts[0].split(separator: "-").compactMap { Int($0) }
        let clock = parts[1].split(separator: ":")
        guard date.count == 3, clock.count == 3, let hour = Int(clock[0]), let minute = Int(clock[1]) else { return nil }
        let secondParts = clock[2].split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let secondText = secondParts.first, let second = Int(secondText), (0...60).contains(second),
              (0...23).contains(hour), (0...59).contains(minute), (1...12).contains(date[1]), (1...31).contains(date[2]),
              (0...9999).contains(date[0]) else { return nil }
        var nanos: Int64 = 0
        if secondParts.count == 2 {
            let digits = String(secondParts[1].prefix(9))
            guard !digits.isEmpty, digits.allSatisfy(\.isNumber), let value = Int64(digits) else { return nil }
            nanos = value * Int64([1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000][9 - digits.count])
        }
        // Days from civil (Howard Hinnant's algorithm).
        let (y, m, d) = (date[0] - (date[1] <= 2 ? 1 : 0), date[1], date[2])
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        let seconds = Int64(days) * 86400 + Int64(hour * 3600 + minute * 60 + second)
        self.init(seconds: seconds, nanoseconds: nanos)
    }
}
