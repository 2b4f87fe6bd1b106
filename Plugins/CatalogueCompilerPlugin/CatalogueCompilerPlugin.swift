import Foundation
import PackagePlugin

/// Compiles a target's `*.catalogue` files into Swift at build time (catalogue-compiler), so the
/// messages are inside the binaries: an installed `anonreg` needs no resource bundle beside it.
@main
struct CatalogueCompilerPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let target = target as? SourceModuleTarget else { return [] }
        let inputs = target.sourceFiles(withSuffix: "catalogue").map(\.url)
        let output = context.pluginWorkDirectoryURL.appendingPathComponent("Catalogue+Compiled.swift")
        return [
            .buildCommand(
                displayName: "Compiling message catalogues of \(target.name)",
                executable: try context.tool(named: "catalogue-compiler").url,
                arguments: [output.path] + inputs.map(\.path),
                inputFiles: inputs,
                outputFiles: [output])
        ]
    }
}
