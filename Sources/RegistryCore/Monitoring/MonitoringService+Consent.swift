import Foundation
import RegistryProtocol

/// Consent, checked before anything is stored: the registry records nothing without it (README.md,
/// "Consent comes first"; docs/PROTOCOL.md `POST /v1/subjects`). An enrolment whose consent fails
/// any rule here is refused with `422 invalid_consent` and writes nothing.
extension MonitoringService {
    /// The longest consent form name, in characters (Unicode code points).
    public static let maxFormCharacters = 200

    func validateConsent(_ wire: ConsentWire, enrolledOn: Day, today: Day, clinic: ClinicID) throws(DomainError) -> ConsentRecord {
        let form = wire.form.trimmingCharacters(in: .whitespaces)
        // Characters are Unicode code points, as docs/PROTOCOL.md says: a form named in Cyrillic
        // gets the same 200 as one named in ASCII (its UTF-8 is up to 800 bytes).
        guard !form.isEmpty, form.unicodeScalars.count <= Self.maxFormCharacters else {
            throw .invalidConsent("consent.form must name the signed form (1 to \(Self.maxFormCharacters) characters)")
        }
        guard wire.scope.contains(.monitoring) else { throw .invalidConsent("consent.scope must include \"monitoring\"") }
        guard Set(wire.scope).count == wire.scope.count else { throw .invalidConsent("consent.scope repeats a value") }
        guard wire.givenOn <= today else { throw .invalidConsent("consent.givenOn is in the future") }
        guard wire.givenOn <= enrolledOn else { throw .invalidConsent("consent.givenOn is after enrolledOn: consent must come first") }
        return ConsentRecord(form: form, givenOn: wire.givenOn, method: wire.method, scope: wire.scope, recordedBy: clinic.rawValue)
    }
}
