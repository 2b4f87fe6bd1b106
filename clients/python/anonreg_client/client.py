"""``Client``: every v1 clinic call of anonregd (docs/PROTOCOL.md §6), typed."""
from __future__ import annotations

import datetime
import os
import urllib.parse
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from . import linkage as profile
from . import oprf
from . import patient_code
from ._http import request
from .errors import ProtocolError
from .models import (CaseStatus, Checkup, CheckupResult, Consent, DueList, Enrolment, Health, Monitoring,
                     SelfRecord)

DateLike = Union[str, datetime.date]
DEFAULT_SOCKET = "/run/anonreg/anonreg.sock"
MAX_BATCH = 100


def _iso(value: DateLike) -> str:
    return value.isoformat() if isinstance(value, datetime.date) else value


def _case(handle: str) -> str:
    # A handle never needs escaping; quoting keeps anything else inside one path segment.
    return urllib.parse.quote(handle, safe="")


class Client:
    """A clinic's connection to anonregd. The kernel's peer credentials of this process decide
    which clinic it acts as (docs/PROTOCOL.md §2): there is nothing to log in with.

    ``socket_path`` defaults to ``$ANONREG_SOCKET``, then ``/run/anonreg/anonreg.sock``. On a
    remote clinic host it is the local end of the OpenSSH forward (docs/OPERATIONS.md §Remote
    clinics). Each call uses its own connection, so a ``Client`` may be shared between threads.

    ``language`` (``"ru"`` or ``"en"``, or any ``Accept-Language`` value) is the language of the
    answers' plain-words fields: ``monitoring.reason``, and ``summary`` and ``access_log[].text``
    of :meth:`self_access` (docs/PROTOCOL.md §4 Languages). Machine fields and errors do not change.
    Without it the daemon answers in English.

    Calls that take a patient code accept it as people type it or a scanner reads it from the
    card, and check it before sending: a typing mistake raises
    :class:`~anonreg_client.patient_code.PatientCodeError` and nothing is sent (the daemon would
    answer ``CodeNotFound``, as for any code that opens nothing).
    """

    def __init__(self, socket_path: Optional[str] = None, timeout: float = 60.0, language: Optional[str] = None) -> None:
        self.socket_path = socket_path or os.environ.get("ANONREG_SOCKET") or DEFAULT_SOCKET
        self.timeout = timeout
        if language is not None and any(c in language for c in "\r\n\0"):
            raise ValueError("language must be a single header value")
        self.language = language

    def _call(self, method: str, target: str, body: Optional[Dict[str, Any]] = None) -> Any:
        headers = {"Accept-Language": self.language} if self.language else None
        return request(self.socket_path, method, target, body, timeout=self.timeout, extra_headers=headers)[1]

    # -- health and the OPRF -------------------------------------------------------------------

    def health(self) -> Health:
        a = self._call("GET", "/v1/health")
        return Health(status=a["status"], version=a["version"])

    def evaluate(self, blinded_element: bytes) -> bytes:
        """``BlindEvaluate`` of one blinded element by the registry's OPRF key."""
        a = self._call("POST", "/v1/oprf/evaluate", {"blindedElement": blinded_element.hex()})
        return bytes.fromhex(a["evaluationElement"])

    def evaluate_batch(self, blinded_elements: Sequence[bytes]) -> List[bytes]:
        """``BlindEvaluate`` of 1 to 100 elements in one request. One invalid element refuses
        the whole batch with :class:`~anonreg_client.errors.InvalidElement` naming its ``index``;
        each element takes one token of the clinic's rate limit."""
        a = self._call("POST", "/v1/oprf/evaluate", {"blindedElements": [e.hex() for e in blinded_elements]})
        out = [bytes.fromhex(x) for x in a["evaluationElements"]]
        if len(out) != len(blinded_elements):
            raise ProtocolError(f"{len(out)} evaluations for {len(blinded_elements)} elements")
        return out

    def linkage_for_input(self, data: bytes) -> str:
        """The linkage value (128 hex digits) of one OPRF input, as bytes."""
        return self.linkage_for_inputs([data])[0]

    def linkage_for_inputs(self, inputs: Sequence[bytes], batch_size: int = MAX_BATCH) -> List[str]:
        """Linkage values of OPRF inputs: blinded here, evaluated in batches, finalised here."""
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError("batch_size must be 1 to 100")
        values: List[str] = []
        for start in range(0, len(inputs), batch_size):
            chunk = [oprf.blind(d) for d in inputs[start:start + batch_size]]
            if len(chunk) == 1:
                evaluated = [self.evaluate(chunk[0].blinded_element)]
            else:
                evaluated = self.evaluate_batch([b.blinded_element for b in chunk])
            values += [oprf.finalize(b, e).hex() for b, e in zip(chunk, evaluated)]
            del chunk
        return values

    def linkage(self, family: str, given: str, birth_date: DateLike, patronymic: Optional[str] = None) -> str:
        """The linkage value of one person under the input profile ``anonreg-linkage-v1``.
        Equals ``anonreg linkage --fields 'family|given|birth date'``."""
        return self.linkage_for_input(profile.identity(family, given, birth_date, patronymic).encode("utf-8"))

    def linkage_batch(self, people: Iterable[Union[str, Tuple[str, str, DateLike], Tuple[str, str, Optional[str], DateLike]]],
                      batch_size: int = MAX_BATCH) -> List[str]:
        """Linkage values of many people, in order, 100 to a request. Each person is a line
        ``family|given|[patronymic|]birth date`` or a tuple ``(family, given, birth_date)`` or
        ``(family, given, patronymic, birth_date)``. Every identity is checked before anything
        is sent."""
        identities = []
        for person in people:
            if isinstance(person, str):
                identities.append(profile.identity_from_line(person))
            elif len(person) == 3:
                identities.append(profile.identity(person[0], person[1], person[2]))  # type: ignore[misc]
            else:
                identities.append(profile.identity(person[0], person[1], person[3], patronymic=person[2]))  # type: ignore[misc]
        return self.linkage_for_inputs([i.encode("utf-8") for i in identities], batch_size=batch_size)

    # -- subjects and cases --------------------------------------------------------------------

    def enrol(self, category: str, enrolled_on: DateLike, consent: Consent, linkage: Optional[str] = None) -> Enrolment:
        """``POST /v1/subjects``. The answer's ``code`` is shown only once: print it for the patient."""
        body: Dict[str, Any] = {"consent": consent.to_json(), "category": category, "enrolledOn": _iso(enrolled_on)}
        if linkage is not None:
            body["linkage"] = linkage
        return Enrolment.from_json(self._call("POST", "/v1/subjects", body))

    def link(self, code: str) -> str:
        """``POST /v1/cases``: this clinic's case handle for the subject holding ``code``."""
        return self._call("POST", "/v1/cases", {"code": patient_code.normalise(code)})["case"]

    def status(self, case: str) -> CaseStatus:
        return CaseStatus.from_json(self._call("GET", f"/v1/cases/{_case(case)}"))

    def add_checkup(self, case: str, on: DateLike, outcome: str, substances: Sequence[str] = (),
                    treatment: Sequence[str] = (), note: str = "", correction: bool = False,
                    relapse_action: Optional[str] = None) -> CheckupResult:
        body: Dict[str, Any] = {"on": _iso(on), "outcome": outcome, "substances": list(substances),
                                "treatment": list(treatment), "note": note, "correction": correction}
        if relapse_action is not None:
            body["relapseAction"] = relapse_action
        return CheckupResult.from_json(self._call("POST", f"/v1/cases/{_case(case)}/checkups", body))

    def checkups(self, case: str) -> List[Checkup]:
        return [Checkup.from_json(c) for c in self._call("GET", f"/v1/cases/{_case(case)}/checkups")["checkups"]]

    def reissue_code(self, case: str) -> str:
        """``POST /v1/cases/{case}/code``: a new patient code; the old one stops working."""
        return self._call("POST", f"/v1/cases/{_case(case)}/code")["code"]

    def withdraw_case(self, case: str) -> str:
        """Erase the subject now, by this clinic's case handle. Returns ``"erased"``."""
        return self._call("POST", f"/v1/cases/{_case(case)}/withdraw")["status"]

    def withdraw_code(self, code: str) -> str:
        """Erase the subject now, by the patient's code (any clinic). Returns ``"erased"``."""
        return self._call("POST", "/v1/withdraw", {"code": patient_code.normalise(code)})["status"]

    def self_access(self, code: str) -> SelfRecord:
        """``POST /v1/self``: everything held about the subject holding ``code``, and who used it."""
        return SelfRecord.from_json(self._call("POST", "/v1/self", {"code": patient_code.normalise(code)}))

    def due(self, before: Optional[DateLike] = None) -> DueList:
        target = "/v1/due" if before is None else "/v1/due?before=" + urllib.parse.quote(_iso(before))
        return DueList.from_json(self._call("GET", target))

    def anonymous_episode(self, category: str, on: DateLike) -> None:
        """``POST /v1/episodes/anonymous``: counted, nothing about the person stored."""
        self._call("POST", "/v1/episodes/anonymous", {"category": category, "on": _iso(on)})


__all__ = ["Client", "Consent", "Monitoring"]
