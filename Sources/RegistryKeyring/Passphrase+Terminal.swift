import RegistryCrypto

#if canImport(Glibc)
    import Glibc
#endif

extension Passphrase {
    /// Asks for a passphrase on the controlling terminal (`/dev/tty`) with echo off, reading it
    /// straight into secure memory; with `confirm`, asks twice and compares in constant time.
    public static func prompt(_ text: String, confirm: Bool) throws(KeyringError) -> KeyMaterial {
        let tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard tty >= 0 else { throw .passphraseEntry("no terminal to ask for the passphrase on; use --passphrase-file FILE") }
        defer { close(tty) }
        let first = try ask(tty, text)
        if confirm {
            let second = try ask(tty, "Repeat it: ")
            guard first.bytes.constantTimeEquals(second.bytes) else {
                throw .passphraseEntry("the two passphrases differ; nothing was written")
            }
        }
        return first
    }

    private static func ask(_ tty: Int32, _ text: String) throws(KeyringError) -> KeyMaterial {
        var saved = termios()
        guard tcgetattr(tty, &saved) == 0 else { throw .passphraseEntry("cannot read the terminal settings") }
        var quiet = saved
        quiet.c_lflag &= ~tcflag_t(ECHO)
        quiet.c_lflag |= tcflag_t(ECHONL)
        _ = Array(text.utf8).withUnsafeBytes { write(tty, $0.baseAddress, $0.count) }
        guard tcsetattr(tty, TCSAFLUSH, &quiet) == 0 else { throw .passphraseEntry("cannot turn off the terminal echo") }
        defer { tcsetattr(tty, TCSAFLUSH, &saved) }
        var length = 0
        let raw: SecretBytes
        do {
            raw = try SecretBytes(count: maxBytes) { (buffer) throws(CryptoError) in
                var byte: UInt8 = 0
                while length < buffer.count {
                    let n = Glibc.read(tty, &byte, 1)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 || byte == UInt8(ascii: "\n") { break }
                    buffer[length] = byte
                    length += 1
                }
                byte = 0
            }
        } catch { throw .crypto(error) }
        guard length > 0 else { throw .passphraseEntry("the passphrase is empty; nothing was written") }
        do {
            let trimmed = try raw.withUnsafeBytes { (all) throws(CryptoError) in
                try SecretBytes(copying: UnsafeRawBufferPointer(rebasing: all[0..<length]))
            }
            return KeyMaterial(trimmed, name: "passphrase")
        } catch { throw .crypto(error) }
    }
}
