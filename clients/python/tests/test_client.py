"""Every v1 clinic call of the Python client against the real daemon, with a second clinic
(another uid) and a peer that is no clinic, and the error body as typed exceptions."""
import datetime

import pytest

from anonreg_client import Client, Consent
from anonreg_client import errors

from conftest import NORTH_UID, STRANGER_UID, as_uid, ChildError

TODAY = datetime.date.today()
ENROLLED = TODAY - datetime.timedelta(days=20)


def consent(form="F-PY-1", scope=("monitoring", "statistics")):
    return Consent(form=form, given_on=ENROLLED, method="written", scope=scope)


def test_enrol_checkup_due_link_from_a_second_clinic_and_withdraw(daemon):
    local = daemon.client()
    assert local.health().status == "ok"
    value = local.linkage("Иванова", "Алёна", "03.02.2001")
    assert len(value) == 128
    enrolment = local.enrol("dependence", ENROLLED, consent(), linkage=value)
    assert enrolment.case.startswith("case_") and enrolment.monitoring.status == "active"
    assert enrolment.monitoring.enrolled_on == ENROLLED

    result = local.add_checkup(enrolment.case, TODAY, "remission", treatment=["methadone"], note="stable; тест пройден")
    assert result.checkup.outcome == "remission" and result.checkup.clinic == "local"
    assert result.monitoring.remission_since == TODAY
    status = local.status(enrolment.case)
    assert status.monitoring.last_checkup == TODAY and status.monitoring.next_checkup_due == TODAY + datetime.timedelta(days=90)
    due = local.due(before=TODAY + datetime.timedelta(days=91))
    assert [c.case for c in due.cases] == [enrolment.case] and due.cases[0].status == "active"
    assert local.due().cases == []

    # A lost code: re-issued; the old one stops working.
    new_code = local.reissue_code(enrolment.case)
    with pytest.raises(errors.CodeNotFound):
        local.self_access(enrolment.code)

    # Clinic north (another uid) cannot see local's case, but links with the patient's code.
    with pytest.raises(ChildError) as e:
        as_uid(NORTH_UID, 0, lambda: Client(daemon.socket).status(enrolment.case).case)
    assert (e.value.name, e.value.code, e.value.status) == ("CaseNotFound", "case_not_found", 404)
    north_case = as_uid(NORTH_UID, 0, lambda: Client(daemon.socket).link(new_code))
    assert north_case.startswith("case_") and north_case != enrolment.case
    north_checkups = as_uid(NORTH_UID, 0, lambda: [c.note for c in Client(daemon.socket).checkups(north_case)])
    assert north_checkups == ["stable; тест пройден"]
    record = local.self_access(new_code)
    assert record.clinics == ["local", "north"] and record.consent.form == "F-PY-1"
    assert any("north" in entry.text for entry in record.access_log)

    # Withdrawal by code at north erases the subject for everyone.
    assert as_uid(NORTH_UID, 0, lambda: Client(daemon.socket).withdraw_code(new_code)) == "erased"
    with pytest.raises(errors.CaseNotFound):
        local.status(enrolment.case)

    # And by case handle.
    second = local.enrol("harmful-use", ENROLLED, consent(form="F-PY-2", scope=("monitoring",)))
    assert local.withdraw_case(second.case) == "erased"
    with pytest.raises(errors.CaseNotFound):
        local.checkups(second.case)

    local.anonymous_episode("harmful-use", TODAY)


def test_errors_become_typed_exceptions(daemon):
    local = daemon.client()
    with pytest.raises(errors.ConsentRequired) as e:
        local._call("POST", "/v1/subjects", {"category": "dependence", "enrolledOn": ENROLLED.isoformat()})
    assert e.value.status == 422
    with pytest.raises(errors.InvalidConsent):
        local.enrol("dependence", ENROLLED, consent(scope=("statistics",)))
    with pytest.raises(errors.UnknownCategory):
        local.enrol("gambling", ENROLLED, consent())
    with pytest.raises(errors.InvalidDate) as e:
        local.enrol("dependence", TODAY + datetime.timedelta(days=3), consent())
    assert e.value.status == 422
    with pytest.raises(errors.InvalidDate) as e:
        local.due(before="2026-02-30")
    assert e.value.status == 400
    case = local.enrol("dependence", ENROLLED, consent()).case
    with pytest.raises(errors.UnknownSubstance):
        local.add_checkup(case, TODAY, "relapse", substances=["chocolate"])
    with pytest.raises(errors.InvalidValue):
        local.add_checkup(case, TODAY, "cured")
    with pytest.raises(errors.UnknownField):
        local._call("POST", "/v1/self", {"code": "x", "name": "Anna"})
    with pytest.raises(errors.InvalidLinkage):
        local.enrol("dependence", ENROLLED, consent(), linkage="zz")
    with pytest.raises(errors.CaseNotFound):
        local.status("case_../../v1/health")
    assert isinstance(errors.error_for(418, "teapot", "m"), errors.APIError)
    assert isinstance(errors.error_for(503, "new_code", "m"), errors.ServerError)


def test_a_peer_that_is_no_clinic_gets_unknown_peer(daemon):
    with pytest.raises(ChildError) as e:
        as_uid(STRANGER_UID, 0, lambda: Client(daemon.socket).health().status)
    assert (e.value.name, e.value.code, e.value.status) == ("UnknownPeer", "unknown_peer", 403)


def test_an_unreachable_daemon_is_its_own_error(tmp_path):
    with pytest.raises(errors.DaemonUnreachable):
        Client(str(tmp_path / "nothing.sock")).health()


def test_the_rate_limit_is_typed(daemon):
    # The fixture's bucket holds 100 tokens; 100 elements use it up.
    client = daemon.client()
    client.linkage_for_inputs([b"person-%d" % i for i in range(100)])
    with pytest.raises(errors.RateLimited) as e:
        client.linkage_for_input(b"one more")
    assert e.value.status == 429
