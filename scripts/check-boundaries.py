#!/usr/bin/env python3
"""The module boundaries README.md claims, checked on every Swift file under Sources/.

- Each C library has one Swift module that imports it: CSodium only RegistryCrypto, GRDB (the
  SQLite driver) only RegistryStore, CQREncode only PatientCard. CAnonregLinux, the small wrapper
  for Linux calls Glibc lacks, may be imported where it is needed.
- Every such import is `internal import`, so no public declaration can expose a C or driver type
  and no module that imports RegistryCrypto or RegistryStore sees the library through it.

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

IMPORT = re.compile(
    r"^\s*(?:@\w+(?:\([^)]*\))?\s+)*"
    r"(?P<access>public|package|internal|fileprivate|private)?\s*"
    r"import\s+(?:(?:struct|class|enum|protocol|typealias|func|var|let)\s+)?"
    r"(?P<module>\w+)"
)


def problems(root: pathlib.Path):
    for path in sorted((root / "Sources").rglob("*.swift")):
        module = path.relative_to(root / "Sources").parts[0]
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = IMPORT.match(line)
            if not match or match["module"] not in OWNERS:
                continue
            library = match["module"]
            where = f"{path.relative_to(root)}:{number}"
            owners = OWNERS[library]
            if owners is not None and module not in owners:
                yield f"{where}: {module} imports {library}; only {', '.join(sorted(owners))} may"
            if match["access"] != "internal":
                yield f"{where}: `{line.strip()}` must be `internal import {library}`"


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    found = list(problems(root))
    for problem in found:
        print(problem)
    if found:
        print(f"check-boundaries: {len(found)} problems", file=sys.stderr)
        return 1
    print("check-boundaries: every C library and the database driver stay inside their module")
    return 0


if __name__ == "__main__":
    sys.exit(main())
