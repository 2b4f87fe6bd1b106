internal import NIOCore
internal import NIOSSL
internal import PostgresNIO

/// Turns what PostgresNIO, NIO and the server throw into `PostgresBackendError`. PSQLError's own
/// description hides everything on purpose; the fields used here are the SQLSTATE and the
/// server's primary message, which name objects and users but never a parameter or a password.
enum PostgresErrors {
    /// SQLSTATE class 28, invalid authorization: a wrong password (28P01) or no pg_hba.conf line
    /// that lets the user in (28000).
    static let authenticationStates: Set<String> = ["28P01", "28000"]

    /// Runs `body`, mapping anything it throws that is not already a `PostgresBackendError`.
    static func mapping<T>(_ body: () async throws -> T) async throws(PostgresBackendError) -> T {
        do { return try await body() } catch let error as PostgresBackendError { throw error } catch {
            throw statementError(error)
        }
    }

    /// An error of a statement on an established connection.
    static func statementError(_ error: any Error) -> PostgresBackendError {
        if let error = error as? PostgresBackendError { return error }
        if let psql = error as? PSQLError, let info = psql.serverInfo {
            return .server(sqlState: info[.sqlState] ?? "", message: info[.message] ?? "no message")
        }
        if let psql = error as? PSQLError {
            return .server(sqlState: "", message: "the connection failed (\(psql.code))")
        }
        return .server(sqlState: "", message: String(describing: type(of: error)))
    }

    /// SQLSTATEs that mean the server cannot serve now, not that the statement was wrong:
    /// class 08 (connection exception), 57P01 to 57P03 (shut down, crashed, starting up), 53300
    /// (too many connections), and a batch's bounded waits running out (PostgresGroupCommit):
    /// 55P03 (lock_timeout) and 57014 (statement_timeout).
    static func isUnavailableState(_ state: String) -> Bool {
        state.hasPrefix("08") || ["57P01", "57P02", "57P03", "53300", "55P03", "57014"].contains(state)
    }

    /// The SQLSTATE of a server error, if `error` is one.
    static func sqlState(_ error: any Error) -> String? {
        (error as? PSQLError)?.serverInfo?[.sqlState]
    }

    /// Why the database is out of reach, if `error` says so: a connection closed or refused, a
    /// server shutting down or starting up. Nil for a statement the server refused.
    static func unavailability(_ error: any Error) -> String? {
        if let transaction = error as? PostgresTransactionError {
            return [transaction.beginError, transaction.closureError, transaction.commitError].compactMap { $0 }.lazy
                .compactMap(unavailability).first
        }
        if let psql = error as? PSQLError {
            if let state = psql.serverInfo?[.sqlState] {
                return isUnavailableState(state) ? "the server said \(psql.serverInfo?[.message] ?? state) (SQLSTATE \(state))" : nil
            }
            switch psql.code {
            case .connectionError, .serverClosedConnection, .uncleanShutdown, .clientClosedConnection, .poolClosed:
                return "the connection was lost (\(psql.code))"
            default:
                return nil
            }
        }
        if error is IOError || error is ChannelError { return "the connection failed (\(reason(error)))" }
        return nil
    }

    /// An error of connecting and authenticating.
    static func connectError(_ error: any Error, config: PostgresConfig) -> PostgresBackendError {
        if let error = error as? PostgresBackendError { return error }
        let endpoint = config.endpointDescription
        // NIO's own connect timeout (set to `connectTimeout`) says the same as the start's deadline.
        if case .connectTimeout = (error as? ChannelError) ?? ((error as? PSQLError)?.underlying as? ChannelError) {
            return .unreachable(endpoint: endpoint, reason: "no answer within \(config.connectTimeout)")
        }
        guard let psql = error as? PSQLError else { return .unreachable(endpoint: endpoint, reason: reason(error)) }
        if let info = psql.serverInfo {
            let state = info[.sqlState] ?? ""
            let message = info[.message] ?? "no message"
            if authenticationStates.contains(state) {
                return .authenticationFailed(endpoint: endpoint, user: config.user, database: config.database, reason: message)
            }
            return .server(sqlState: state, message: message)
        }
        switch psql.code {
        case .unsupportedAuthMechanism, .authMechanismRequiresPassword, .saslError:
            return .authenticationFailed(
                endpoint: endpoint, user: config.user, database: config.database,
                reason: "the server asked for an authentication method anonreg does not use (\(psql.code)); use scram-sha-256")
        case .sslUnsupported:
            return .unreachable(endpoint: endpoint, reason: "the server does not offer TLS, and anonreg connects over TCP only with TLS")
        case .serverClosedConnection, .uncleanShutdown:
            return .unreachable(endpoint: endpoint, reason: "the server closed the connection during the start-up")
        default:
            return .unreachable(endpoint: endpoint, reason: psql.underlying.map(reason) ?? "\(psql.code)")
        }
    }

    /// A connection-level cause in words: the system call's error, or TLS's.
    static func reason(_ error: any Error) -> String {
        switch error {
        case let io as IOError: return String(describing: io)
        case let ssl as NIOSSLError: return "TLS: \(ssl)"
        case let ssl as BoringSSLError: return "TLS: \(ssl)"
        case let ssl as NIOSSLExtraError: return "TLS: \(ssl)"
        case let channel as ChannelError: return String(describing: channel)
        default:
            if let psql = error as? PSQLError { return "\(psql.code)" }
            return String(describing: error)
        }
    }
}
