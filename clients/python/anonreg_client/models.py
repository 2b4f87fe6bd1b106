"""Typed answers of protocol v1 (docs/openapi.yaml). Dates are ``datetime.date``."""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from .errors import ProtocolError


def _day(value: Any) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ProtocolError("a date in the answer is not YYYY-MM-DD") from None


def _opt_day(value: Any) -> Optional[datetime.date]:
    return None if value is None else _day(value)


def _get(d: Any, key: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise ProtocolError(f"the answer lacks {key!r}")
    return d[key]


@dataclass(frozen=True)
class Consent:
    """A consent record: the signed form's id, when and how it was given, and its scope."""

    form: str
    given_on: datetime.date
    method: str = "written"
    scope: Sequence[str] = ("monitoring", "statistics")

    def to_json(self) -> Dict[str, Any]:
        return {"form": self.form, "givenOn": self.given_on.isoformat(), "method": self.method, "scope": list(self.scope)}

    @staticmethod
    def from_json(d: Any) -> "Consent":
        return Consent(form=_get(d, "form"), given_on=_day(_get(d, "givenOn")), method=_get(d, "method"), scope=tuple(_get(d, "scope")))


@dataclass(frozen=True)
class Monitoring:
    """A case's monitoring status, computed fresh by the registry (docs/PROTOCOL.md §7)."""

    status: str
    category: str
    enrolled_on: datetime.date
    retention_cap_on: datetime.date
    reason: str
    last_checkup: Optional[datetime.date] = None
    next_checkup_due: Optional[datetime.date] = None
    remission_since: Optional[datetime.date] = None
    earliest_end: Optional[datetime.date] = None

    @staticmethod
    def from_json(d: Any) -> "Monitoring":
        return Monitoring(
            status=_get(d, "status"), category=_get(d, "category"), enrolled_on=_day(_get(d, "enrolledOn")),
            retention_cap_on=_day(_get(d, "retentionCapOn")), reason=_get(d, "reason"),
            last_checkup=_opt_day(d.get("lastCheckup")), next_checkup_due=_opt_day(d.get("nextCheckupDue")),
            remission_since=_opt_day(d.get("remissionSince")), earliest_end=_opt_day(d.get("earliestEnd")))


@dataclass(frozen=True)
class Enrolment:
    """``case`` is the clinic's handle; ``code`` is the patient code, shown only this once."""

    case: str
    code: str
    monitoring: Monitoring

    @staticmethod
    def from_json(d: Any) -> "Enrolment":
        return Enrolment(case=_get(d, "case"), code=_get(d, "code"), monitoring=Monitoring.from_json(_get(d, "monitoring")))


@dataclass(frozen=True)
class Checkup:
    on: datetime.date
    outcome: str
    clinic: str
    substances: List[str] = field(default_factory=list)
    treatment: List[str] = field(default_factory=list)
    note: str = ""
    correction: bool = False
    relapse_action: Optional[str] = None

    @staticmethod
    def from_json(d: Any) -> "Checkup":
        return Checkup(
            on=_day(_get(d, "on")), outcome=_get(d, "outcome"), clinic=_get(d, "clinic"),
            substances=list(d.get("substances", [])), treatment=list(d.get("treatment", [])), note=d.get("note", ""),
            correction=bool(d.get("correction", False)), relapse_action=d.get("relapseAction"))


@dataclass(frozen=True)
class CheckupResult:
    checkup: Checkup
    monitoring: Monitoring

    @staticmethod
    def from_json(d: Any) -> "CheckupResult":
        return CheckupResult(checkup=Checkup.from_json(_get(d, "checkup")), monitoring=Monitoring.from_json(_get(d, "monitoring")))


@dataclass(frozen=True)
class CaseStatus:
    case: str
    monitoring: Monitoring

    @staticmethod
    def from_json(d: Any) -> "CaseStatus":
        return CaseStatus(case=_get(d, "case"), monitoring=Monitoring.from_json(_get(d, "monitoring")))


@dataclass(frozen=True)
class DueCase:
    case: str
    next_checkup_due: datetime.date
    status: str


@dataclass(frozen=True)
class DueList:
    before: datetime.date
    cases: List[DueCase]

    @staticmethod
    def from_json(d: Any) -> "DueList":
        return DueList(before=_day(_get(d, "before")), cases=[
            DueCase(case=_get(c, "case"), next_checkup_due=_day(_get(c, "nextCheckupDue")), status=_get(c, "status"))
            for c in _get(d, "cases")])


@dataclass(frozen=True)
class AccessLogEntry:
    at: str
    actor: str
    action: str
    text: str


@dataclass(frozen=True)
class SelfRecord:
    """Everything the registry holds about the subject whose code was shown (right of access)."""

    monitoring: Monitoring
    consent: Consent
    checkups: List[Checkup]
    clinics: List[str]
    access_log: List[AccessLogEntry]
    summary: List[str]

    @staticmethod
    def from_json(d: Any) -> "SelfRecord":
        return SelfRecord(
            monitoring=Monitoring.from_json(_get(d, "monitoring")), consent=Consent.from_json(_get(d, "consent")),
            checkups=[Checkup.from_json(c) for c in _get(d, "checkups")], clinics=list(_get(d, "clinics")),
            access_log=[AccessLogEntry(at=_get(e, "at"), actor=_get(e, "actor"), action=_get(e, "action"), text=_get(e, "text"))
                        for e in _get(d, "accessLog")],
            summary=list(_get(d, "summary")))


@dataclass(frozen=True)
class Health:
    status: str
    version: str
