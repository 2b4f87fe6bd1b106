"""The linkage input profile anonreg-linkage-v1 against the shared table that the Swift CLI's
tests read too (docs/linkage-profile-v1.json)."""
import json

import pytest

from anonreg_client import linkage
from anonreg_client.errors import IdentityError

from conftest import PROFILE_TABLE

TABLE = json.loads(PROFILE_TABLE.read_text())


def test_the_table_is_for_this_profile():
    assert TABLE["profile"] == linkage.VERSION == "anonreg-linkage-v1"


@pytest.mark.parametrize("group", TABLE["groups"], ids=[g["why"][:40] for g in TABLE["groups"]])
def test_every_spelling_of_a_group_gives_its_identity(group):
    for line in group["lines"]:
        assert linkage.identity_from_line(line) == group["identity"], line


@pytest.mark.parametrize("pair", TABLE["distinct"], ids=[p["why"][:40] for p in TABLE["distinct"]])
def test_distinct_people_stay_distinct(pair):
    got = [linkage.identity_from_line(line) for line in pair["lines"]]
    assert got == pair["identities"] and got[0] != got[1]


@pytest.mark.parametrize("refused", TABLE["refused"], ids=[r["why"][:40] for r in TABLE["refused"]])
def test_refused_lines_name_their_problem_and_never_echo_the_identity(refused):
    with pytest.raises(IdentityError) as e:
        linkage.identity_from_line(refused["line"])
    assert e.value.problem == refused["problem"]
    for name in refused["line"].split("|"):
        if len(name) > 2:
            assert name not in str(e.value)


def test_structured_fields_equal_the_line_form():
    assert linkage.identity("Иванов", "Пётр", "31.01.1990", patronymic="Сергеевич") == \
        linkage.identity_from_line("Ivanov|Pyotr|1990-01-31")
    import datetime
    assert linkage.identity("Ivanov", "Petr", datetime.date(1990, 1, 31)).endswith("|1990-01-31")
