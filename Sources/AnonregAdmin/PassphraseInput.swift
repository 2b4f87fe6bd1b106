import Foundation
import RegistryCrypto
import RegistryKeyring

/// Where an admin command gets a passphrase: `--passphrase-file FILE` (0600, one trailing newline
/// ignored), else a prompt on the terminal (asked twice when a new secret is being sealed).
/// Never argv, never an environment variable.
enum PassphraseInput {
    static func obtain(file: String?, purpose: String, confirm: Bool) throws -> KeyMaterial {
        if let file {
            do { return try Passphrase.read(path: file) } catch { throw CLIFailure.usage("--passphrase-file: \(error)") }
        }
        guard isatty(0) == 1 else {
            throw CLIFailure.usage("no terminal to ask for the \(purpose) on; use --passphrase-file FILE")
        }
        do { return try Passphrase.prompt("\(purpose.prefix(1).uppercased() + purpose.dropFirst()): ", confirm: confirm) } catch {
            throw CLIFailure.usage("\(error)")
        }
    }

    /// The keyring passphrase, only when the keyring is sealed.
    static func forKeyring(directory: String, file: String?) throws -> KeyMaterial? {
        guard let manifest = try? KeyringManifest.read(directory: directory), manifest.sealing != nil else {
            if file != nil { return try obtain(file: file, purpose: "keyring passphrase", confirm: false) }
            return nil
        }
        return try obtain(file: file, purpose: "keyring passphrase", confirm: false)
    }
}

/// Creates a new output file with mode 0600; refuses an existing one.
enum NewFile {
    static func create(_ path: String) throws -> Int32 {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            if errno == EEXIST { throw CLIFailure.refused("\(path) already exists; choose a new file name (nothing is ever overwritten)") }
            throw CLIFailure.failed("cannot create \(path): \(String(cString: strerror(errno)))")
        }
        fchmod(fd, 0o600)
        return fd
    }

    static func write(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw CLIFailure.failed("cannot write \(path): \(String(cString: strerror(errno)))") }
            done += n
        }
    }
}
