#!/usr/bin/env python3
"""The module boundaries README.md claims, checked on every Swift file under Sources/.

- Each C library has one Swift module that imports it: CSodium only RegistryCrypto, GRDB (the
  SQLite driver) only RegistryStore, CQREncode only PatientCard. CAnonregLinux, the small wrapper
  for Linux calls Glibc lacks, may be imported where it is needed.
- Every such import is `internal import`, so no public declaration can expose a C or driver type
  and no module that imports RegistryCrypto or RegistryStore sees the library through it.
- A storage backend (RegistryStore, SQLite) is named only by a composition root: anonregd's main,
  the CLI's offline admin commands, and the bench, crash-helper and fuzz executables. The daemon's
  server (RegistryServer) and the clinic side reach storage through the contract in RegistryCore
  (docs/STORAGE.md §The storage contract), so neither imports a backend nor names its type.

Exit 0 when every import holds, 1 with one line per problem otherwise.
"""

import pathlib
import re
import sys

# library -> the Sources/ directories allowed to import it (None: any, as long as it is internal).
OWNERS = {
    "CSodium": {"RegistryCrypto"},
    "GRDB": {"RegistryStore"},
    "CQREncode": {"PatientCard"},
    "CAnonregLinux": None,
}

# backend module -> the Sources/ directories allowed to import it (the composition roots), and
# the type names nobody else may mention.
BACKENDS = {
    "RegistryStore": {"anonregd", "AnonregAdmin", "anonreg-bench", "anonreg-store-crash-helper", "fuzz-request"},
}
BACKEND_TYPES = re.compile(r"\bSQLiteRegistryStore\b")
BACKEND_IMPORT = re.compile(
    r"\bimport\s+(?:(?:struct|class|enum|protocol|typealias|func|var|let)\s+)?`?(?P<module>"
    + "|".join(BACKENDS)
    + r")`?\b"
)

# Any mention of importing one of them, wherever it sits on a line or across lines: `import GRDB`,
# `@_implementationOnly import GRDB`, `import Foundation; import GRDB`, ``import `GRDB` ``,
# `import struct GRDB.Row`, `import` and the name on two lines.
MENTION = re.compile(
    r"\bimport\s+(?:(?:struct|class|enum|protocol|typealias|func|var|let)\s+)?`?(?P<module>"
    + "|".join(OWNERS)
    + r")`?\b"
)


def accepted(line: str, library: str) -> bool:
    """The one form allowed: the line is `internal import LIBRARY`, optionally with a trailing
    line comment. Anything else that imports the library fails (fail closed)."""
    return re.fullmatch(rf"\s*internal import {library}\s*(//.*)?", line) is not None


def problems(root: pathlib.Path):
    files = sorted((root / "Sources").rglob("*.swift"))
    if not files:
        yield f"{root / 'Sources'}: no Swift files found; is this the repository's root?"
        return
    for path in files:
        module = path.relative_to(root / "Sources").parts[0]
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for match in MENTION.finditer(text):
            number = text.count("\n", 0, match.start()) + 1
            line = lines[number - 1]
            if line.lstrip().startswith("//"):
                continue  # documentation that names an import
            library = match["module"]
            where = f"{path.relative_to(root)}:{number}"
            owners = OWNERS[library]
            if owners is not None and module not in owners:
                yield f"{where}: {module} imports {library}; only {', '.join(sorted(owners))} may"
            if not accepted(line, library):
                yield f"{where}: `{line.strip()}` must be exactly `internal import {library}`"
        if module in BACKENDS or any(module in roots for roots in BACKENDS.values()):
            continue
        for match in BACKEND_IMPORT.finditer(text):
            number = text.count("\n", 0, match.start()) + 1
            if lines[number - 1].lstrip().startswith("//"):
                continue
            yield f"{path.relative_to(root)}:{number}: {module} imports the backend {match['module']}; only a composition root may"
        for match in BACKEND_TYPES.finditer(text):
            number = text.count("\n", 0, match.start()) + 1
            yield f"{path.relative_to(root)}:{number}: {module} names the backend type {match[0]}; use the storage contract"


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    found = list(problems(root))
    for problem in found:
        print(problem)
    if found:
        print(f"check-boundaries: {len(found)} problems", file=sys.stderr)
        return 1
    print("check-boundaries: every C library and the database driver stay inside their module; only composition roots name a backend")
    return 0


if __name__ == "__main__":
    sys.exit(main())
