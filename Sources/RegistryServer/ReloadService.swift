import Dispatch
import Logging
import RegistryConfig
import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#endif

/// SIGHUP re-reads anonreg.toml, then the keys directory's KEK versions
/// (`RegistryApp.reloadKeys`). A configuration that does not validate, or a keyring change the
/// daemon does not take up, is reported and the running one is kept.
public struct ReloadService: Service {
    let app: RegistryApp
    let configPath: String

    public init(app: RegistryApp, configPath: String) {
        self.app = app
        self.configPath = configPath
    }

    public func run() async throws {
        signal(SIGHUP, SIG_IGN)
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        source.setEventHandler { continuation.yield() }
        source.resume()
        defer { source.cancel() }
        await withGracefulShutdownHandler {
            for await _ in stream {
                do {
                    app.reload(try DaemonConfig.load(path: configPath))
                    await app.recordPolicyIfChanged(actor: "system reload")
                    await app.recordPrivacyIfChanged(actor: "system reload")
                } catch {
                    app.logger.error("configuration not reloaded, the running one stays: \(error)", metadata: ["path": "\(configPath)"])
                }
                app.reloadKeys()
            }
        } onGracefulShutdown: {
            continuation.finish()
        }
    }
}
