internal import NIOCore
internal import PostgresNIO
import RegistryCore
import Synchronization

/// Every statement the store sends is raced against its connection's close (docs/STORAGE.md
/// §PostgreSQL, "A lost connection").
///
/// PostgresNIO 1.33 writes a statement to its channel without a promise
/// (`channel.write(task, promise: nil)` in PostgresConnection.swift): when the channel closed
/// between the caller's `isClosed` check and that write, the statement is dropped and its caller
/// waits for ever, holding the write, the batch behind it, and the daemon's shutdown. Checking
/// `isClosed` first only narrows that window. Here the statement runs in a task of its own while
/// the caller waits for whichever comes first: the statement's answer, or the connection's
/// `closeFuture`, which then fails the caller with `unavailable`. A statement the driver dropped
/// leaves its task suspended, holding the closed connection's objects: memory per lost
/// connection, never a hung request.
///
/// One `closeFuture` callback is registered per connection, on its first statement, and the
/// connection's entry is removed when it closes: callbacks never pile up on a pooled connection
/// that lives for hours.
final class ConnectionCloseWatch: Sendable {
    static let shared = ConnectionCloseWatch()

    /// A live connection: the object and the driver's id, so that an address reused after a
    /// close is not mistaken for the closed connection.
    private struct Key: Hashable {
        let object: ObjectIdentifier
        let id: Int
    }

    private struct State {
        /// Per watched connection, the callers waiting for a statement, by token.
        var waiting: [Key: [UInt64: OnceAnswer]] = [:]
        var nextToken: UInt64 = 0
    }

    private let state = Mutex(State())

    /// Connections watched right now (tests): one entry per open connection that ran a statement.
    var watchedConnections: Int { state.withLock { $0.waiting.count } }

    /// Runs `work`, one exchange with the server on `connection`; fails with `unavailable` as
    /// soon as the connection closes, whether or not the driver ever answers `work`.
    func run<T: Sendable>(
        on connection: PostgresConnection, _ work: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let key = Key(object: ObjectIdentifier(connection), id: connection.id)
        let value: any Sendable = try await withCheckedThrowingContinuation { continuation in
            let answer = OnceAnswer(continuation)
            let (token, isFirst) = state.withLock { state -> (UInt64, Bool) in
                state.nextToken &+= 1
                let isFirst = state.waiting[key] == nil
                state.waiting[key, default: [:]][state.nextToken] = answer
                return (state.nextToken, isFirst)
            }
            if isFirst {
                // Runs at once if the connection is already closed.
                connection.closeFuture.whenComplete { _ in self.closed(key) }
            }
            Task {
                let result: Result<any Sendable, any Error>
                do { result = .success(try await work()) } catch { result = .failure(error) }
                self.finished(key, token: token)
                answer.resume(with: result)
            }
        }
        guard let typed = value as? T else { throw StorageError.database(reason: "a statement returned another type") }
        return typed
    }

    private func finished(_ key: Key, token: UInt64) {
        // The entry itself stays while the connection is open: its close callback is registered.
        state.withLock { _ = $0.waiting[key]?.removeValue(forKey: token) }
    }

    private func closed(_ key: Key) {
        let waiting = state.withLock { $0.waiting.removeValue(forKey: key) } ?? [:]
        for answer in waiting.values {
            answer.resume(with: .failure(StorageError.unavailable(reason: "the connection to the database was lost")))
        }
    }
}

/// A continuation resumed by whichever of the statement and the close comes first.
private final class OnceAnswer: Sendable {
    private let continuation: Mutex<CheckedContinuation<any Sendable, any Error>?>

    init(_ continuation: CheckedContinuation<any Sendable, any Error>) {
        self.continuation = Mutex(continuation)
    }

    func resume(with result: Result<any Sendable, any Error>) {
        let continuation = self.continuation.withLock { value -> CheckedContinuation<any Sendable, any Error>? in
            defer { value = nil }
            return value
        }
        continuation?.resume(with: result)
    }
}
