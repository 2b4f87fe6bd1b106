"""Patient codes as typed or scanned, checked before they are sent, and Accept-Language, against
the real daemon (docs/PROTOCOL.md §4 Patient codes and §4 Languages)."""
import datetime
import random

import pytest

from anonreg_client import Client, Consent, errors
from anonreg_client.patient_code import ALPHABET, PatientCodeError, normalise

TODAY = datetime.date.today()
ENROLLED = TODAY - datetime.timedelta(days=20)


def consent():
    return Consent(form="F-PY-CODE", given_on=ENROLLED, method="written", scope=("monitoring",))


def well_formed(rng: random.Random) -> str:
    """A code as the daemon prints one (docs/CRYPTO.md §Patient code), from random symbols."""
    values = [rng.randrange(8)] + [rng.randrange(32) for _ in range(25)]
    check = 0
    for v in values:
        check = (check * 32 + v) % 37
    printed = "".join(ALPHABET[v] for v in values + [check])
    return "-".join(printed[i:i + 4] for i in range(0, 27, 4))


def test_every_single_substitution_and_adjacent_transposition_is_a_typing_mistake():
    rng = random.Random(19)
    for _ in range(20):
        code = well_formed(rng)
        assert normalise(code) == code
        symbols = code.replace("-", "")
        for i in range(27):
            for s in ALPHABET[:32] if i < 26 else ALPHABET:
                if s == symbols[i]:
                    continue
                typo = symbols[:i] + s + symbols[i + 1:]
                with pytest.raises(PatientCodeError) as e:
                    normalise(typo)
                assert e.value.typing_mistake, (i, s, e.value.problem)
                assert "typing mistake" in str(e.value) and typo not in str(e.value)
        for i in range(26):
            if symbols[i] == symbols[i + 1]:
                continue
            swapped = symbols[:i] + symbols[i + 1] + symbols[i] + symbols[i + 2:]
            with pytest.raises(PatientCodeError) as e:
                normalise(swapped)
            assert e.value.problem in ("check_symbol_mismatch", "out_of_range", "invalid_character")


def test_other_malformed_codes_say_what_is_wrong_without_repeating_the_code():
    code = well_formed(random.Random(7))
    cases = {
        code[:-2]: "wrong_length",
        code + "0": "wrong_length",
        "": "wrong_length",
        code.replace("-", "_"): "invalid_character",
        # Cyrillic look-alikes (а, о) are not folded: they make the code malformed.
        code[:5] + "\u0410" + code[6:]: "invalid_character",
        # str.upper() would make "SS" of "ß" and "FI" of a ligature: neither is read as letters.
        code[:-2] + "\u00df": "invalid_character",
        code[:5] + "\ufb01" + code[7:]: "invalid_character",
    }
    for text, problem in cases.items():
        with pytest.raises(PatientCodeError) as e:
            normalise(text)
        assert e.value.problem == problem, text
        assert not e.value.typing_mistake
        if text:
            assert text not in str(e.value)
    with pytest.raises(PatientCodeError, match="27 letters and digits; 25 were given"):
        normalise(code[:-2])


def test_every_accepted_variant_reaches_the_same_case_and_a_typo_is_never_sent(daemon):
    local = daemon.client()
    rng = random.Random()
    enrolment = None
    for _ in range(40):
        candidate = local.enrol("dependence", ENROLLED, consent())
        if "0" in candidate.code and "1" in candidate.code:
            enrolment = candidate
            break
    assert enrolment is not None, "no code with both 0 and 1 in 40 enrolments"
    code = enrolment.code
    variants = [
        code,
        code.lower(),
        code.replace("-", " "),
        code.replace("-", ""),
        " " + code.replace("-", " - ").lower() + "\r\n",
        code.replace("0", "O").replace("1", "I"),
        code.replace("0", "o").replace("1", "l"),
        "\t" + code.replace("1", "L"),
    ]
    for variant in variants:
        assert normalise(variant) == code
        assert local.link(variant) == enrolment.case, repr(variant)
        assert local.self_access(variant).clinics == ["local"]

    symbols = list(code.replace("-", ""))
    symbols[5] = ALPHABET[(ALPHABET.index(symbols[5]) + 1) % 32]
    typo = "".join(symbols)
    before = daemon.audit()
    for call in (local.link, local.self_access, local.withdraw_code):
        with pytest.raises(PatientCodeError) as e:
            call(typo)
        assert e.value.typing_mistake
    assert daemon.audit() == before, "a code with a typing mistake reached the daemon"
    # A well-formed code that opens nothing does reach the daemon: only it can say so.
    with pytest.raises(errors.CodeNotFound):
        local.self_access(well_formed(rng))
    assert local.withdraw_code(variants[-1]) == "erased"


def test_language_changes_the_plain_words_only(daemon):
    english = daemon.client()
    russian = Client(daemon.socket, language="ru-RU,ru;q=0.9,en;q=0.5")
    enrolment = english.enrol("dependence", ENROLLED, consent())
    en = english.status(enrolment.case).monitoring
    ru = russian.status(enrolment.case).monitoring
    assert en.reason.startswith("enrolled on ") and "no check-up yet" in en.reason
    assert ru.reason.startswith("наблюдение начато ") and "осмотров ещё не было" in ru.reason
    assert (en.status, en.category, en.enrolled_on, en.next_checkup_due, en.retention_cap_on) == \
           (ru.status, ru.category, ru.enrolled_on, ru.next_checkup_due, ru.retention_cap_on)
    record = russian.self_access(enrolment.code)
    assert record.summary[-1].startswith("Вы можете в любой момент отозвать согласие")
    assert any("клиника local" in entry.text for entry in record.access_log)
    # Errors are the same in every language.
    refused = []
    for client in (english, russian):
        with pytest.raises(errors.CaseNotFound) as e:
            client.status("case_00000000000000000000000000000000")
        refused.append((e.value.status, e.value.code, e.value.message))
    assert refused[0] == refused[1]
    with pytest.raises(ValueError):
        Client(daemon.socket, language="ru\r\nX-Injected: 1")
