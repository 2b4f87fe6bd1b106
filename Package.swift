// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "anonreg",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "anonregd", targets: ["anonregd"]),
        .executable(name: "anonreg", targets: ["anonreg"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
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
        // Every cryptographic primitive: the only importer of CSodium.
        .target(
            name: "RegistryCrypto",
            dependencies: ["CSodium"]
        ),
        // The keys directory: versioned KEKs, OPRF seed, index and audit keys. Daemon/admin side only.
        .target(
            name: "RegistryKeyring",
            dependencies: ["RegistryCrypto"]
        ),
        // The monitoring model, policy and the storage seam (`RegistryStorage`). Pure logic.
        .target(
            name: "RegistryCore",
            dependencies: ["RegistryProtocol"]
        ),
        // SQLite through GRDB: the only importer of GRDB; implements RegistryStorage.
        .target(
            name: "RegistryStore",
            dependencies: [
                "RegistryCore", "RegistryProtocol", "RegistryCrypto", "RegistryKeyring",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        // A child process for the store's SIGKILL crash test (not installed).
        .executableTarget(
            name: "anonreg-store-crash-helper",
            dependencies: ["RegistryStore", "RegistryCore", "RegistryKeyring"]
        ),
        .executableTarget(
            name: "anonregd",
            dependencies: [
                "RegistryKeyring",
                "RegistryProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "anonreg",
            dependencies: [
                "RegistryCrypto",
                "RegistryProtocol",
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
            path: "Tests/AnonregTestSupport"
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
            dependencies: ["RegistryCore"]
        ),
        .testTarget(
            name: "RegistryStoreTests",
            dependencies: ["RegistryStore", "RegistryCore", "RegistryKeyring", "RegistryCrypto", "AnonregTestSupport"]
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["AnonregTestSupport"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
