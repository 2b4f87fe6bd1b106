/// The two card sizes (docs/OPERATIONS.md §Patient cards). Lengths are millimetres.
public enum CardSize: String, CaseIterable, Sendable {
    /// ID-1 (ISO/IEC 7810), the size of a bank card: 85.6 × 54 mm, corners of radius 3.18 mm.
    case wallet
    /// A sticker label of 70 × 37 mm, the common A4 sheet of 24 labels (3 × 8).
    case sticker

    public var width: Double { self == .wallet ? 85.6 : 70 }
    public var height: Double { self == .wallet ? 54 : 37 }
    var cornerRadius: Double { self == .wallet ? 3.18 : 2 }
    var margin: Double { self == .wallet ? 4 : 3 }
    /// One QR module. At 0.9 mm and 0.6 mm a 300 dpi printer gives 10 and 7 dots a module.
    var qrModule: Double { self == .wallet ? 0.9 : 0.6 }
    /// The sentence's largest and smallest type (font size; 2.8 mm is 8 pt, 1.8 mm about 5 pt).
    var sentenceSizes: (largest: Double, smallest: Double) { self == .wallet ? (2.8, 1.8) : (2.3, 1.6) }
}
