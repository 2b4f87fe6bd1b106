#!/usr/bin/env python3
"""The module boundaries README.md claims, checked on every Swift file under Sources/.

- Each C library has one Swift module that imports it: CSodium only RegistryCrypto, GRDB (the
  SQLite driver) only RegistryStore, PostgresNIO (the PostgreSQL driver) and NIOSSL (its TLS)
  only RegistryPostgres, CQREncode only PatientCard. CAnonregLinux, the small wrapper
  for Linux calls Glibc lacks, may be imported where it is needed.
- Every such import is `internal import`, so no public declaration can expose a C or driver type
  and no module that imports RegistryCrypto or RegistryStore sees the library through it.
- A storage backend (RegistryStore, SQLite; RegistryPostgres, PostgreSQL) is named only by a
  composition root: anonregd's main, the CLI's offline admin commands, and the bench,
  crash-helper and fuzz executables. RegistryPostgres is linked by anonregd and the crash helper. The daemon's
  server (RegistryServer) and the clinic side reach storage through the contract in RegistryCore
  (docs/STORAGE.md §The storage contract), so neither imports a backend nor names its type.
- RegistryFormats, the byte formats every backend shares, is imported only by the backends and
  by AnonregAdmin (offline `audit verify`).

Exit 0 when every import holds, 1 with one line per problem otherwise.
"""

import pathlib
import re
import sys

# library -> the Sources/ directories allowed to import it (None: any, as long as it is internal).
OWNERS = {
    "CSodium": {"RegistryCrypto"},
    "GRDB": {"RegistryStore"},
    "PostgresNIO": {"RegistryPostgres"},
    "NIOSSL": {"RegistryPostgres"},
    "CQREncode": {"PatientCard"},
    "CAnonregLinux": None,
}

# backend module -> the Sources/ directories allowed to import it (the composition roots), and
# the type names nobody else may mention.
BACKENDS = {
    "RegistryStore": {"anonregd", "anonreg", "AnonregAdmin", "anonreg-bench", "anonreg-store-crash-helper", "fuzz-request"},
    # anonregd (`[storage] backend = "postgresql"`) and the conformance suite's SIGKILL writer.
    "RegistryPostgres": {"anonregd", "anonreg-store-crash-helper"},
}
ROOTS = set().union(*BACKENDS.values())

# The backend-neutral byte formats (docs/STORAGE.md §Backend-neutral formats) are `package`, so
# any module of the package could import them: only the backends and the CLI's offline audit
# verification may. The server and the clinic side reach them only through a backend.
FORMATS_USERS = {"RegistryStore", "RegistryPostgres", "AnonregAdmin"}
BACKEND_TYPES = re.compile(r"\b(?:SQLiteRegistryStore|PostgresStore)\b")


def import_of(modules) -> re.Pattern:
    return re.compile(
        r"\bimport\s+(?:(?:struct|class|enum|protocol|typealias|func|var|let)\s+)?`?(?P<module>"
        + "|".join(re.escape(m) for m in sorted(modules))
        + r")`?(?![\w-])"
    )


BACKEND_IMPORT = import_of(BACKENDS)
FORMATS_IMPORT = import_of({"RegistryFormats"})
# Module names of the roots that are Swift identifiers (anonreg-bench's module is anonreg_bench).
ROOT_IMPORT = import_of({r.replace("-", "_") for r in ROOTS})
EXPORTED = re.compile(r"@_exported\s+import\s+(?:(?:struct|class|enum|protocol|typealias|func|var|let)\s+)?`?(?P<module>"
                      + "|".join(sorted(set(BACKENDS) | set(OWNERS))) + r")`?\b")

# Any mention of importing one of them, wherever it sits on a line or across lines: `import GRDB`,
# `@_implementationOnly import GRDB`, `import Foundation; import GRDB`, ``import `GRDB` ``,
# `import struct GRDB.Row`, `import` and the name on two lines.
MENTION = re.compile(
    r"\bimport\s+(?:(?:struct|class|enum|protocol|typealias|func|var|let)\s+)?`?(?P<module>"
    + "|".join(OWNERS)
    + r")`?\b"
)


def without_comments(text: str) -> str:
    """The text with every comment blanked out (newlines kept, so line numbers hold): Swift
    reads a comment between tokens as whitespace, so `import /* x */ GRDB` imports GRDB. String
    literals are skipped so that `"//"` inside one does not start a comment."""
    out = []
    i, n = 0, len(text)
    while i < n:
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append("".join(c if c == "\n" else " " for c in text[i:j]))
            i = j
        elif text[i] == '"':
            j = i + 1
            while j < n and text[j] != '"' and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def accepted(line: str, library: str) -> bool:
    """The one form allowed: the line (comments blanked) is `internal import LIBRARY`. Anything
    else that imports the library fails (fail closed)."""
    return re.fullmatch(rf"\s*internal import {library}\s*", line) is not None


def problems(root: pathlib.Path):
    files = sorted((root / "Sources").rglob("*.swift"))
    if not files:
        yield f"{root / 'Sources'}: no Swift files found; is this the repository's root?"
        return
    for path in files:
        module = path.relative_to(root / "Sources").parts[0]
        text = without_comments(path.read_text(encoding="utf-8"))
        lines = text.splitlines()
        for match in MENTION.finditer(text):
            number = text.count("\n", 0, match.start()) + 1
            line = lines[number - 1]
            library = match["module"]
            where = f"{path.relative_to(root)}:{number}"
            owners = OWNERS[library]
            if owners is not None and module not in owners:
                yield f"{where}: {module} imports {library}; only {', '.join(sorted(owners))} may"
            if not accepted(line, library):
                yield f"{where}: `{line.strip()}` must be exactly `internal import {library}`"
        # A backend re-exported (`@_exported import`) from anywhere reaches every module that
        # imports that one: refused everywhere.
        for match in EXPORTED.finditer(text):
            number = text.count("\n", 0, match.start()) + 1
            yield f"{path.relative_to(root)}:{number}: {module} re-exports {match['module']}; nothing may"
        if module not in FORMATS_USERS and module != "RegistryFormats":
            for match in FORMATS_IMPORT.finditer(text):
                number = text.count("\n", 0, match.start()) + 1
                yield (f"{path.relative_to(root)}:{number}: {module} imports RegistryFormats; only "
                       f"{', '.join(sorted(FORMATS_USERS))} may")
        if module in BACKENDS or module in ROOTS:
            continue
        for match in BACKEND_IMPORT.finditer(text):
            number = text.count("\n", 0, match.start()) + 1
            yield f"{path.relative_to(root)}:{number}: {module} imports the backend {match['module']}; only a composition root may"
        for match in ROOT_IMPORT.finditer(text):
            number = text.count("\n", 0, match.start()) + 1
            yield f"{path.relative_to(root)}:{number}: {module} imports the composition root {match['module']}, which names a backend"
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
