"""The linkage input profile ``anonreg-linkage-v1`` (docs/PROTOCOL.md §Linkage, "Input profile").

The same rules as ``Sources/AnonregClinic/LinkageProfile.swift``; the shared table
``docs/linkage-profile-v1.json`` checks both. A change of rules is a new profile version, and so
a new linkage epoch (docs/CRYPTO.md §Linkage epochs).
"""
from __future__ import annotations

import datetime
import re
import unicodedata
from typing import Optional, Union

from .errors import IdentityError

VERSION = "anonreg-linkage-v1"

# Step 1: separators, removed wherever they are ("Петров-Водкин" = "Петров Водкин" = "ПетровВодкин").
SEPARATORS = frozenset(
    [0x09, 0x20, 0x27, 0x2C, 0x2D, 0x2E, 0x60, 0xA0, 0xB4, 0xB7, 0x2B9, 0x2BA, 0x2BC]
    + list(range(0x2000, 0x200C))
    + [0x2010, 0x2011, 0x2012, 0x2013, 0x2014, 0x2015, 0x2018, 0x2019, 0x202F, 0x3000, 0xFF0D]
)

# Step 2: scientific (ISO 9) transliteration letters, replaced before NFKD would strip their carons.
CARONS = {0x10C: "ch", 0x10D: "ch", 0x15C: "shch", 0x15D: "shch", 0x160: "sh", 0x161: "sh", 0x17D: "zh", 0x17E: "zh"}

# Step 4: Cyrillic to Latin, ICAO Doc 9303, with є і ґ ў of Ukrainian and Belarusian.
CYRILLIC = {
    0x430: "a", 0x431: "b", 0x432: "v", 0x433: "g", 0x434: "d", 0x435: "e", 0x436: "zh", 0x437: "z",
    0x438: "i", 0x439: "i", 0x43A: "k", 0x43B: "l", 0x43C: "m", 0x43D: "n", 0x43E: "o", 0x43F: "p",
    0x440: "r", 0x441: "s", 0x442: "t", 0x443: "u", 0x444: "f", 0x445: "kh", 0x446: "ts", 0x447: "ch",
    0x448: "sh", 0x449: "shch", 0x44A: "ie", 0x44B: "y", 0x44C: "", 0x44D: "e", 0x44E: "iu", 0x44F: "ia",
    0x451: "e", 0x454: "ie", 0x456: "i", 0x457: "i", 0x45E: "u", 0x491: "g",
}

# Step 4: Latin letters that NFKD does not decompose.
SPECIAL_LATIN = {
    0xC6: "ae", 0xD0: "d", 0xD8: "o", 0xDE: "th", 0xDF: "ss", 0xE6: "ae", 0xF0: "d", 0xF8: "o", 0xFE: "th",
    0x110: "d", 0x111: "d", 0x126: "h", 0x127: "h", 0x131: "i", 0x138: "k", 0x141: "l", 0x142: "l",
    0x14A: "n", 0x14B: "n", 0x152: "oe", 0x153: "oe", 0x166: "t", 0x167: "t",
}

# Step 5: longest match first at each position; one pass, replacements are not scanned again.
REWRITES = {
    "shch": "shch", "sch": "shch", "shh": "shch",
    "sh": "sh", "zh": "zh", "ch": "ch", "kh": "kh", "ts": "ts", "cz": "ts", "ph": "f", "th": "t",
    "yu": "iu", "ju": "iu", "ya": "ia", "ja": "ia", "yo": "e", "jo": "e", "ye": "e", "je": "e",
    "h": "kh", "x": "ks", "w": "v", "c": "k", "y": "i", "j": "i",
}
LONGEST = max(len(p) for p in REWRITES)

_CYRILLIC_ACCEPTED = frozenset([0x401, 0x404, 0x406, 0x407, 0x40E, 0x451, 0x454, 0x456, 0x457, 0x45E, 0x490, 0x491])


def _accepted(v: int) -> bool:
    """Step 1's repertoire, checked before normalisation."""
    return (
        0x41 <= v <= 0x5A or 0x61 <= v <= 0x7A
        or (0xC0 <= v <= 0xFF and v not in (0xD7, 0xF7))
        or 0x100 <= v <= 0x17F
        or 0x300 <= v <= 0x36F
        or 0x410 <= v <= 0x44F or v in _CYRILLIC_ACCEPTED
        or 0xFF21 <= v <= 0xFF3A or 0xFF41 <= v <= 0xFF5A
        or v in SEPARATORS
    )


def _lower(v: int) -> int:
    if 0x41 <= v <= 0x5A or 0x410 <= v <= 0x42F:
        return v + 0x20
    if 0x400 <= v <= 0x40F:
        return v + 0x50
    if v == 0x490:
        return 0x491
    return v


def _rewrite(s: str) -> str:
    out = []
    i = 0
    while i < len(s):
        for n in range(min(LONGEST, len(s) - i), 0, -1):
            replacement = REWRITES.get(s[i:i + n])
            if replacement is not None:
                out.append(replacement)
                i += n
                break
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def _collapse(s: str) -> str:
    out = []
    for c in s:
        if not out or out[-1] != c:
            out.append(c)
    return "".join(out)


def fold_name(name: str, field: str = "name") -> str:
    """A name in its profile form (docs/PROTOCOL.md §Linkage, steps 1 to 6)."""
    if any(not _accepted(ord(c)) for c in name):
        raise IdentityError(
            "unsupported_character", f"the {field} has a character outside the profile's letters (Latin, Cyrillic of Russian, "
            "Ukrainian and Belarusian), spaces, hyphens and apostrophes")
    letters = []
    premapped = "".join(CARONS.get(ord(c), c) for c in name)
    for c in unicodedata.normalize("NFKD", premapped):
        v = ord(c)
        if 0x300 <= v <= 0x36F or v in SEPARATORS:
            continue
        lower = _lower(v)
        if lower in CYRILLIC:
            letters.append(CYRILLIC[lower])
        elif lower in SPECIAL_LATIN:
            letters.append(SPECIAL_LATIN[lower])
        elif 0x61 <= lower <= 0x7A:
            letters.append(chr(lower))
        else:
            raise IdentityError(
                "unsupported_character", f"the {field} has a character outside the profile's letters (Latin, Cyrillic of Russian, "
                "Ukrainian and Belarusian), spaces, hyphens and apostrophes")
    folded = _collapse(_rewrite("".join(letters)))
    if not folded:
        raise IdentityError("empty_name", f"the {field} has no letters")
    return folded


_ISO = re.compile(r"\A([0-9]{4})-([0-9]{2})-([0-9]{2})\Z")
_DOTTED = re.compile(r"\A([0-9]{1,2})\.([0-9]{1,2})\.([0-9]{4})\Z")


def fold_date(value: Union[str, datetime.date]) -> str:
    """``YYYY-MM-DD`` or ``DD.MM.YYYY`` (one-digit day and month allowed), a real date, as
    ``YYYY-MM-DD``. Spaces and tabs around it are ignored."""
    if isinstance(value, datetime.date):
        return value.isoformat()
    text = value.strip(" \t")
    m = _ISO.match(text)
    if m:
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    else:
        m = _DOTTED.match(text)
        if not m:
            raise IdentityError("invalid_date", "the birth date must be a real date written YYYY-MM-DD or DD.MM.YYYY")
        d, mo, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
    try:
        if y < 1:
            raise ValueError
        return datetime.date(y, mo, d).isoformat()
    except ValueError:
        raise IdentityError("invalid_date", "the birth date must be a real date written YYYY-MM-DD or DD.MM.YYYY") from None


def identity(family: str, given: str, birth_date: Union[str, datetime.date], patronymic: Optional[str] = None) -> str:
    """The identity string ``anonreg-linkage-v1|FAMILY|GIVEN|YYYY-MM-DD``.

    The patronymic is accepted and left out, so that records with and without it agree.
    """
    del patronymic
    return "|".join([VERSION, fold_name(family, "family name"), fold_name(given, "given name"), fold_date(birth_date)])


def identity_from_line(line: str) -> str:
    """One line as ``anonreg linkage --fields`` and ``--batch`` read it:
    ``family|given|birth date`` or ``family|given|patronymic|birth date``."""
    parts = line.split("|")
    if len(parts) == 3:
        return identity(parts[0], parts[1], parts[2])
    if len(parts) == 4:
        return identity(parts[0], parts[1], parts[3], patronymic=parts[2])
    raise IdentityError(
        "field_count", "an identity is family|given|birth date or family|given|patronymic|birth date "
        f"({len(parts)} field{'' if len(parts) == 1 else 's'} given)")


def normalise_free_form(text: str) -> str:
    """The free-form normalisation of ``anonreg linkage --identity`` (not the profile):
    NFKC, lower case, runs of white space as one space, trimmed."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())
