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


def test_a_socket_someone_else_could_have_placed_gets_nothing(tmp_path):
    """docs/OPERATIONS.md §Socket: in a group-writable directory a clinic of that group can put
    its own listener at the socket's path; the client refuses to send, so the patient code it
    would have sent never reaches the listener."""
    import os
    import shutil
    import subprocess
    import tempfile
    import time

    base = tempfile.mkdtemp(prefix="anonreg-py-trust-")
    try:
        os.chmod(base, 0o755)
        run = os.path.join(base, "run")
        os.mkdir(run)
        os.chown(run, 0, 2500)
        os.chmod(run, 0o770)
        capture = os.path.join(base, "captured")
        open(capture, "w").close()
        os.chmod(capture, 0o666)
        path = os.path.join(run, "anonreg.sock")
        listener = subprocess.Popen(["setpriv", f"--reuid={NORTH_UID}", "--regid=2500", "--clear-groups", "socat", "-u",
                                     f"UNIX-LISTEN:{path},fork", f"OPEN:{capture},append"])
        try:
            for _ in range(100):
                if os.path.exists(path):
                    break
                time.sleep(0.02)
            with pytest.raises(errors.UntrustedSocket) as e:
                Client(path).self_access("7TH6-TX19-PWFG-CCSY-SFQ7-SWRP-6SV")
            assert "writable by its group (gid 2500)" in str(e.value)
            # Sticky: the directory passes, the attacker's socket does not.
            os.chmod(run, 0o1777)
            with pytest.raises(errors.UntrustedSocket) as e:
                Client(path).self_access("7TH6-TX19-PWFG-CCSY-SFQ7-SWRP-6SV")
            assert f"owned by uid {NORTH_UID}" in str(e.value)
            time.sleep(0.2)
            assert open(capture).read() == ""
        finally:
            listener.kill()
            listener.wait()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_listener_running_as_another_user_gets_nothing():
    """The listener's own uid is checked too (SO_PEERCRED, docs/OPERATIONS.md §Socket): here the
    socket file and its directory are root's, but the process that listens on it runs as clinic
    north. The client connects, sees who listens, and closes without sending a byte."""
    import os
    import shutil
    import socket
    import tempfile

    base = tempfile.mkdtemp(prefix="anonreg-py-listener-")
    try:
        os.chmod(base, 0o755)
        path = os.path.join(base, "anonreg.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)  # the file is root's
        os.chmod(path, 0o666)
        ready_r, ready_w = os.pipe()
        got_r, got_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the listener: drops to north's uid, then listens (SO_PEERCRED is set by listen)
            try:
                os.setgid(65534)
                os.setuid(NORTH_UID)
                server.listen(1)
                os.write(ready_w, b"1")
                server.settimeout(10)
                connection, _ = server.accept()
                connection.settimeout(10)
                received = b""
                while True:
                    chunk = connection.recv(4096)
                    if not chunk:
                        break
                    received += chunk
                os.write(got_w, str(len(received)).encode())
            finally:
                os._exit(0)
        server.close()
        os.close(ready_w)
        os.close(got_w)
        try:
            assert os.read(ready_r, 1) == b"1"
            with pytest.raises(errors.UntrustedSocket) as e:
                Client(path).self_access("7TH6-TX19-PWFG-CCSY-SFQ7-SWRP-6SV")
            assert f"the process listening on it runs as uid {NORTH_UID}" in str(e.value)
            assert os.read(got_r, 32) == b"0", "the listener received the request"
        finally:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            os.close(ready_r)
            os.close(got_r)
    finally:
        shutil.rmtree(base, ignore_errors=True)
