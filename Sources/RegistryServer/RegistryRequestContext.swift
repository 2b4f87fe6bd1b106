import Hummingbird
import Logging
import RegistryCore

/// Per-request context: Hummingbird's core storage plus who the peer is.
public struct RegistryRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The connection's credentials (read once per connection).
    public var peer: PeerCredentials?
    /// What those credentials are to the registry.
    public var roles: [Role]

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        peer = nil
        roles = []
    }

    init(source: ApplicationRequestContextSource, peer: PeerCredentials?, roles: [Role]) {
        coreContext = .init(source: source)
        self.peer = peer
        self.roles = roles
    }

    /// Bodies are capped at 64 KiB (413 `body_too_large`).
    public var maxUploadSize: Int { RegistryApp.maxBodyBytes }

    var clinic: ClinicIDOrNil {
        for role in roles { if case .clinic(let id) = role { return id } }
        return nil
    }

    var adminUID: UInt32? {
        for role in roles { if case .admin(let uid) = role { return uid } }
        return nil
    }
}

typealias ClinicIDOrNil = ClinicID?
