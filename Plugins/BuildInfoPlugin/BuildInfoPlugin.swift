import Foundation
import PackagePlugin

/// Generates `GeneratedBuildInfo.swift` for the `AnonregBuildInfo` target before every build:
/// the git commit the binaries are built from (`--version`). `scripts/build-info.sh` takes it from
/// git in a clone, or from `.git-commit`, which `git archive` fills in (export-subst in
/// .gitattributes), and rewrites the file only when the commit changed, so an unchanged tree
/// rebuilds nothing.
@main
struct BuildInfoPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appendingPathComponent("generated")
        return [
            .prebuildCommand(
                displayName: "anonreg build info (git commit)",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: [
                    context.package.directoryURL.appendingPathComponent("scripts/build-info.sh").path,
                    context.package.directoryURL.path,
                    output.path,
                ],
                outputFilesDirectory: output)
        ]
    }
}
