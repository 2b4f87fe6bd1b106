internal import GRDB
import RegistryCore
import RegistryProtocol

extension StorageError {
    /// Maps any error from a store operation to the seam's error type. SQLite messages name
    /// constraints, never bound values, so they are safe to carry.
    static func from(_ error: any Error, path: String) -> StorageError {
        switch error {
        case let error as StorageError:
            return error
        case let error as DatabaseError:
            switch error.resultCode {
            case .SQLITE_FULL:
                return .storageFull
            case .SQLITE_CORRUPT, .SQLITE_NOTADB:
                return .unusableDatabase(path: path, reason: error.message ?? "the file is damaged")
            case .SQLITE_IOERR where error.extendedResultCode == .SQLITE_IOERR_WRITE:
                // A short write: disk full or a file-size limit (EFBIG).
                return .storageFull
            default:
                return .database(reason: error.message ?? "\(error.resultCode)")
            }
        default:
            return .database(reason: String(describing: type(of: error)))
        }
    }
}
