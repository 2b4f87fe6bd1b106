import Hummingbird
import Logging
import NIOCore
import RegistryCore

/// Per-request context: Hummingbird's core storage plus who the peer is.
public struct RegistryRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The connection's credentials (read once per connection).
    public var peer: PeerCredentials?
    /// What those credentials are to the registry.
    public var roles: [Role]
    /// The connection the request came on (RequestPipeline reads its peer).
    let channel: (any Channel)?

    /// A context with no peer and no role yet: RequestPipeline resolves them from `channel`.
    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        peer = nil
        roles = []
        channel = source.channel
    }

    init(source: ApplicationRequestContextSource, peer: PeerCredentials?, roles: [Role]) {
        coreContext = .init(source: source)
        self.peer = peer
        self.roles = roles
        channel = source.channel
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
