internal import CQREncode

#if canImport(Glibc)
    import Glibc
#endif

/// A QR code symbol (ISO/IEC 18004) as a square of dark and light modules, made by libqrencode.
public struct QRMatrix: Sendable, Equatable {
    /// Modules per side, without the quiet zone.
    public let width: Int
    /// Row-major, `true` for a dark module.
    public let modules: [Bool]

    public subscript(x: Int, y: Int) -> Bool { modules[y * width + x] }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case tooLong
        case encoderFailed(errno: Int32)

        public var description: String {
            switch self {
            case .tooLong: "the text does not fit in a QR code of the card's size"
            case .encoderFailed(let code): "libqrencode could not encode the text (errno \(code))"
            }
        }
    }

    /// The card's symbol: version 4 (33 × 33 modules), error correction level Q (about 25 % of
    /// the symbol may be damaged, ISO/IEC 18004 §4.15), so that every code gives a symbol of the
    /// same size: 33 symbols fit in byte mode at 4-Q, and libqrencode mixes in alphanumeric mode
    /// where it can. `text` is encoded exactly as given, case-sensitively.
    public static let cardVersion: Int32 = 4

    public static func encode(_ text: String, version: Int32 = cardVersion) throws(Failure) -> QRMatrix {
        guard !text.utf8.contains(0) else { throw .encoderFailed(errno: EINVAL) }
        let symbol = text.withCString { QRcode_encodeString($0, version, QR_ECLEVEL_Q, QR_MODE_8, 1) }
        guard let symbol else {
            let code = errno
            throw code == ERANGE ? .tooLong : .encoderFailed(errno: code)
        }
        defer { QRcode_free(symbol) }
        let width = Int(symbol.pointee.width)
        guard width > 0, let data = symbol.pointee.data else { throw .encoderFailed(errno: 0) }
        // Bit 0 of each byte is the module's colour (qrencode.h, "Symbol data is represented as an
        // array contains width*width uchars").
        let modules = (0..<(width * width)).map { data[$0] & 1 == 1 }
        // The version is only a minimum: libqrencode grows the symbol when the text needs it.
        guard version == 0 || width == 17 + 4 * Int(version) else { throw .tooLong }
        return QRMatrix(width: width, modules: modules)
    }
}
