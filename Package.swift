// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "anonreg",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "anonregd", targets: ["anonregd"]),
        .executable(name: "anonreg", targets: ["anonreg"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
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
        .testTarget(
            name: "RegistryCryptoTests",
            dependencies: ["RegistryCrypto"],
            resources: [.copy("Resources")]
        ),
        .testTarget(
            name: "RegistryKeyringTests",
            dependencies: ["RegistryKeyring", "RegistryCrypto"]
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: []
        ),
    ],
    swiftLanguageModes: [.v6]
)
