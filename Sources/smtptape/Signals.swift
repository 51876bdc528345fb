import Dispatch
import Foundation

/// SIGINT and SIGTERM, for the commands that run until they are stopped (`replay`, `capture`).
enum Signals {
    /// Handles SIGINT and SIGTERM with `action(count)`, `count` being how many have come so far.
    /// The action runs on a dispatch queue, not in a signal handler, so it may do anything; keep
    /// the result alive as long as the signals should be handled.
    static func onStop(_ action: @escaping @Sendable (Int) -> Void) -> [any DispatchSourceSignal] {
        let counter = SignalCounter()
        return [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { action(counter.next()) }
            source.resume()
            return source
        }
    }
}

final class SignalCounter: @unchecked Sendable {
    let lock = NSLock()
    var count = 0

    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        count += 1
        return count
    }
}
