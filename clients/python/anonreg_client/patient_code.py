"""Patient codes as people type them, or as a scanner reads them from the card's QR code.

The check symbol is checked here, before anything is sent (docs/PROTOCOL.md §4 Patient codes):
it is public, so checking it needs no key, and the person who typed the code is on this side.
anonregd answers a malformed code exactly like an unknown one (``CodeNotFound``), so only the
client can say "typing mistake". The algorithm is docs/CRYPTO.md §Patient code, the same as
``PatientCode.parse`` in the daemon and the CLI.
"""
from __future__ import annotations

from .errors import AnonregError

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ*~$=U"
_VALUES = {symbol: value for value, symbol in enumerate(ALPHABET)}
# Crockford's look-alikes.
_VALUES.update({"O": 0, "I": 1, "L": 1})
DATA_SYMBOLS = 26
_IGNORED = "- \t"

TYPING_MISTAKE = "This code has a typing mistake: check every letter and digit against the card."


class PatientCodeError(AnonregError, ValueError):
    """A typed code that cannot be a patient code. Never repeats the code.

    ``problem`` is ``check_symbol_mismatch`` or ``out_of_range`` (a typing mistake: the message
    says so), ``wrong_length`` or ``invalid_character``.
    """

    def __init__(self, problem: str, message: str) -> None:
        super().__init__(f"{message} [{problem}]")
        self.problem = problem
        self.message = message

    @property
    def typing_mistake(self) -> bool:
        return self.problem in ("check_symbol_mismatch", "out_of_range")


def _length_message(count: int) -> str:
    return f"A patient code has 27 letters and digits; {count} were given. Check it against the card."


def normalise(text: str) -> str:
    """The printed form ``XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXX`` of a typed or scanned code.

    Accepts any case, hyphens and spaces anywhere (or none), ``O`` for ``0`` and ``I``/``L`` for
    ``1``, and surrounding white space such as a scanner's carriage return. Raises
    :class:`PatientCodeError` otherwise.
    """
    # In order, as PatientCode.parse: the first problem met is the one reported.
    values = []
    for c in text.strip():
        if c in _IGNORED:
            continue
        if len(values) == DATA_SYMBOLS + 1:
            raise PatientCodeError("wrong_length", _length_message(len([s for s in text.strip() if s not in _IGNORED])))
        # ASCII case folding only: str.upper would turn "ß" into "SS" and a ligature into letters.
        value = _VALUES.get(chr(ord(c) - 32) if "a" <= c <= "z" else c)
        # U and the four punctuation symbols (values 32 to 36) only as the check symbol.
        if value is None or (len(values) < DATA_SYMBOLS and value >= 32):
            raise PatientCodeError("invalid_character", "A patient code has only digits and Latin letters. "
                                                        "Check it against the card.")
        values.append(value)
    if len(values) != DATA_SYMBOLS + 1:
        raise PatientCodeError("wrong_length", _length_message(len(values)))
    # The first symbol carries the two always-zero top bits of the 130-bit value.
    if values[0] >= 8:
        raise PatientCodeError("out_of_range", TYPING_MISTAKE)
    remainder = 0
    for value in values[:DATA_SYMBOLS]:
        remainder = (remainder * 32 + value) % 37
    if remainder != values[DATA_SYMBOLS]:
        raise PatientCodeError("check_symbol_mismatch", TYPING_MISTAKE)
    printed = "".join(ALPHABET[v] for v in values)
    return "-".join(printed[i:i + 4] for i in range(0, len(printed), 4))
