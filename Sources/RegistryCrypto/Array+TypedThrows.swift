/// `Array.withUnsafeBytes` is untyped `rethrows`, so a `throws(CryptoError)` body loses its error
/// type through it. These forward the typed error through a `Result`.
extension Array where Element == UInt8 {
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws(CryptoError) -> R) throws(CryptoError) -> R {
        try withUnsafeBytes { buffer in Result { () throws(CryptoError) -> R in try body(buffer) } }.get()
    }

    mutating func withMutableBytes<R>(
        _ body: (UnsafeMutableRawBufferPointer) throws(CryptoError) -> R
    ) throws(CryptoError) -> R {
        try withUnsafeMutableBytes { buffer in Result { () throws(CryptoError) -> R in try body(buffer) } }.get()
    }
}
