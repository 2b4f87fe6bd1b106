// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "anonreg",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "anonregd", targets: ["anonregd"]),
        .executable(name: "anonreg", targets: ["anonreg"]),
        .executable(name: "anonreg-clinic", targets: ["anonreg-clinic"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // The only C boundary for libsodium. Nothing but RegistryCrypto may depend on it.
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        // Codable wire types of protocol v1 and shared version constants. No dependencies.
        .target(name: "RegistryProtocol"),
        // The one HTTP/1.1 client over anonregd's Unix socket (a connection, the socket primitives
        // and the untrusted-answer parser): the CLI, the bench and the tests are all built on it.
        // Foundation only.
        .target(name: "UnixHTTP"),
        // The words people read, in every language anonreg speaks: one catalogue file per language
        // (Sources/RegistryText/Catalogues/<language>.catalogue, docs/TRANSLATING.md), compiled into
        // the binaries at build time, plus plural rules and language negotiation. Pure.
        .target(
            name: "RegistryText",
            dependencies: ["RegistryProtocol"],
            plugins: ["CatalogueCompilerPlugin"]
        ),
        .executableTarget(name: "catalogue-compiler"),
        .plugin(
            name: "CatalogueCompilerPlugin",
            capability: .buildTool(),
            dependencies: ["catalogue-compiler"]
        ),
        // The only C boundary for QR codes: libqrencode through pkg-config. Only PatientCard imports it.
        .systemLibrary(
            name: "CQREncode",
            pkgConfig: "libqrencode",
            providers: [.apt(["libqrencode-dev"])]
        ),
        // The patient's printable card (SVG, and PDF through rsvg-convert): the code, its QR symbol
        // and one sentence. Linked by the clinic side of the CLI only; no keys, no database.
        .target(
            name: "PatientCard",
            dependencies: ["CQREncode", "RegistryText"]
        ),
        // ThreadSanitizer builds only: a Mutex TSan can see (make test-sanitize). Empty of use otherwise.
        .target(name: "TSanLockShim"),
        // Every cryptographic primitive: the only importer of CSodium.
        .target(
            name: "RegistryCrypto",
            dependencies: ["CSodium", "TSanLockShim"]
        ),
        // The keys directory: versioned KEKs, OPRF seed, index and audit keys. Daemon/admin side only.
        .target(
            name: "RegistryKeyring",
            dependencies: ["RegistryCrypto", "CAnonregLinux", "TSanLockShim"]
        ),
        // The monitoring model, policy and the storage seam (`RegistryStorage`). Pure logic.
        .target(
            name: "RegistryCore",
            dependencies: ["RegistryProtocol", "RegistryText"]
        ),
        // Statistics tables: suppression (with an exact disclosure audit), the geometric mechanism,
        // CSV/text/SVG renderings. Pure: no keys, no database, no randomness of its own.
        .target(
            name: "RegistryStats",
            dependencies: ["RegistryCore", "RegistryProtocol"]
        ),
        // What every storage backend writes the same way, with no database code (docs/STORAGE.md
        // §Backend-neutral formats): the envelope and record associated data, the keyed indexes,
        // the sealed case handle, the row MACs and record chain, the erased-subject set, and the
        // audit chain's verification.
        .target(
            name: "RegistryFormats",
            dependencies: ["RegistryCore", "RegistryProtocol", "RegistryCrypto", "RegistryKeyring", "TSanLockShim"]
        ),
        // SQLite through GRDB: the only importer of GRDB; implements RegistryStorage.
        .target(
            name: "RegistryStore",
            dependencies: [
                "RegistryCore", "RegistryProtocol", "RegistryCrypto", "RegistryKeyring", "RegistryFormats", "TSanLockShim",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        // PostgreSQL through PostgresNIO (issue 17): the only importer of PostgresNIO and NIOSSL.
        // Connects (Unix socket, or TCP with verify-full TLS), checks durability, migrates under an
        // advisory lock (docs/STORAGE.md §PostgreSQL), and implements the whole storage contract
        // (RegistryBackend). anonregd links it for `[storage] backend = "postgresql"`.
        .target(
            name: "RegistryPostgres",
            dependencies: [
                "RegistryCore", "RegistryCrypto", "RegistryKeyring", "RegistryProtocol", "RegistryFormats",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // anonreg.toml: parsing (a strict TOML 1.0 parser of its own: TOMLKit 0.6.0 has undefined
        // behaviour and leaks on every parse; docs/OPERATIONS.md §Configuration), validation,
        // the commented template `anonreg init` writes, and the service user, as which root's
        // offline commands work (setresuid through CAnonregLinux).
        .target(
            name: "RegistryConfig",
            dependencies: ["RegistryCore", "RegistryProtocol", "CAnonregLinux"]
        ),
        // prctl(2) and friends, which Swift cannot call (variadic). No logic.
        .target(name: "CAnonregLinux"),
        // The daemon: Unix-socket HTTP server, peer credentials, routes, errors, sd_notify. It reaches
        // storage only through the contract in RegistryCore and links no backend (docs/STORAGE.md
        // §The storage contract); anonregd's main names the backend.
        .target(
            name: "RegistryServer",
            dependencies: [
                "RegistryCore", "RegistryProtocol", "RegistryCrypto", "RegistryKeyring", "RegistryConfig",
                "RegistryStats", "RegistryText", "CAnonregLinux", "TSanLockShim",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The CLI's admin side: offline work on a state directory (init, and later keys, backup,
        // audit). It links the keyring and the store; the clinic side does not.
        .target(
            name: "AnonregAdmin",
            dependencies: [
                "AnonregClinic", "RegistryConfig", "RegistryCore", "RegistryCrypto", "RegistryKeyring", "RegistryProtocol",
                "RegistryStats", "RegistryStore", "RegistryFormats", "CAnonregLinux",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The CLI's clinic side: talks to anonregd over the socket and does the OPRF client half.
        // It depends on nothing that holds keys or opens the database (RegistryStats renders the
        // statistics it fetches; it is pure).
        .target(
            name: "AnonregClinic",
            dependencies: [
                "RegistryProtocol", "RegistryCrypto", "RegistryStats", "RegistryText", "PatientCard", "CAnonregLinux", "UnixHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // A child process for the store's SIGKILL crash test (not installed).
        .executableTarget(
            name: "anonreg-store-crash-helper",
            dependencies: ["RegistryStore", "RegistryPostgres", "RegistryCore", "RegistryKeyring"]
        ),
        // libFuzzer targets (issue 8; scripts/fuzz.sh builds them with -sanitize=fuzzer,address).
        // A normal build makes corpus replayers of them, so they always compile.
        // The shared `main` of the fuzz targets: libFuzzer's driver, or a corpus replayer.
        .target(name: "FuzzDriver"),
        .executableTarget(
            name: "fuzz-request",
            dependencies: [
                "FuzzDriver", "RegistryServer", "RegistryConfig", "RegistryCore", "RegistryKeyring", "RegistryProtocol", "RegistryStore",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "fuzz-response",
            dependencies: ["FuzzDriver", "UnixHTTP"]
        ),
        .executableTarget(
            name: "fuzz-crypto",
            dependencies: ["FuzzDriver", "RegistryCrypto"]
        ),
        // The load generator and in-process limits of `make bench`, `make bench-scale` and
        // `make bench-audit` (docs/PERFORMANCE.md). Not installed.
        .executableTarget(
            name: "anonreg-bench",
            dependencies: [
                "RegistryCore", "RegistryProtocol", "RegistryCrypto", "RegistryKeyring", "RegistryStore", "RegistryConfig", "RegistryStats", "TSanLockShim",
                "UnixHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        // The git commit `--version` reports (BuildInfoPlugin runs scripts/build-info.sh before
        // every build). Only the executables depend on it: a new commit recompiles nothing else.
        .plugin(name: "BuildInfoPlugin", capability: .buildTool()),
        .target(name: "AnonregBuildInfo", plugins: ["BuildInfoPlugin"]),
        .executableTarget(
            name: "anonregd",
            dependencies: [
                "RegistryServer", "RegistryStore", "RegistryPostgres", "RegistryConfig", "RegistryCore", "RegistryKeyring",
                "RegistryProtocol",
                "AnonregBuildInfo",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The clinic commands alone: links no keyring, store or server code
        // (scripts/check-clinic-binary.sh checks the linked binary).
        .executableTarget(
            name: "anonreg-clinic",
            dependencies: [
                "AnonregClinic",
                "RegistryProtocol",
                "AnonregBuildInfo",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "anonreg",
            dependencies: [
                "AnonregAdmin",
                "AnonregClinic",
                "RegistryProtocol",
                "AnonregBuildInfo",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "RegistryProtocolTests",
            dependencies: ["RegistryProtocol"]
        ),
        // Helpers shared by the test targets: temporary directories, byte scans, running binaries.
        .target(
            name: "AnonregTestSupport",
            dependencies: ["UnixHTTP"],
            path: "Tests/AnonregTestSupport"
        ),
        .testTarget(
            name: "AnonregClinicTests",
            dependencies: ["AnonregClinic", "RegistryProtocol", "RegistryText", "UnixHTTP"]
        ),
        .testTarget(
            name: "RegistryCryptoTests",
            dependencies: ["RegistryCrypto"],
            resources: [.copy("Resources")]
        ),
        .testTarget(
            name: "RegistryKeyringTests",
            dependencies: ["RegistryKeyring", "RegistryCrypto", "AnonregTestSupport"]
        ),
        .testTarget(
            name: "RegistryCoreTests",
            dependencies: ["RegistryCore", "RegistryProtocol", "RegistryText"]
        ),
        .testTarget(
            name: "RegistryTextTests",
            dependencies: ["RegistryText", "RegistryProtocol"]
        ),
        .testTarget(
            name: "PatientCardTests",
            dependencies: ["PatientCard", "RegistryText", "RegistryCrypto", "AnonregTestSupport"]
        ),
        .testTarget(
            name: "RegistryStatsTests",
            dependencies: ["RegistryStats", "RegistryCore", "RegistryProtocol"]
        ),
        .testTarget(
            name: "RegistryConfigTests",
            dependencies: ["RegistryConfig", "RegistryCore", "RegistryProtocol"]
        ),
        .testTarget(
            name: "RegistryServerTests",
            dependencies: [
                "RegistryServer", "RegistryConfig", "RegistryCore", "RegistryCrypto", "RegistryProtocol", "AnonregTestSupport",
                // RequestPipelineTests: a real registry behind the pipeline, driven by HummingbirdTesting.
                "RegistryKeyring", "RegistryStore",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .testTarget(
            name: "RegistryStoreTests",
            dependencies: ["RegistryStore", "RegistryFormats", "RegistryCore", "RegistryKeyring", "RegistryCrypto", "AnonregTestSupport",
                           // To plant hostile schema objects in backup payloads (BackupStoreTests).
                           .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // The storage contract's behaviour, written once against the protocols and run for every
        // backend in Backends.all (docs/STORAGE.md §Conformance). Only each backend's harness file
        // names its module.
        .testTarget(
            name: "StorageConformanceTests",
            dependencies: [
                "RegistryCore", "RegistryKeyring", "RegistryCrypto", "RegistryProtocol", "AnonregTestSupport",
                "RegistryStore",  // SQLiteHarness.swift
                "RegistryPostgres",  // PostgresHarness.swift
            ]
        ),
        // The PostgreSQL backend's start against throwaway clusters (AnonregTestSupport's
        // ThrowawayPostgres; PostgreSQL 15 from scripts/setup.sh): connect, durability, migrations.
        .testTarget(
            name: "PostgresBackendTests",
            dependencies: ["RegistryPostgres", "RegistryCore", "RegistryKeyring", "RegistryProtocol", "AnonregTestSupport"]
        ),
        // The monitoring domain over the real store: a simulated three-year timeline.
        .testTarget(
            name: "MonitoringSimulationTests",
            dependencies: ["RegistryCore", "RegistryStore", "RegistryKeyring", "RegistryProtocol", "AnonregTestSupport"]
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["AnonregTestSupport"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
