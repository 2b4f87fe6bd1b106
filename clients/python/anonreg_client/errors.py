"""Typed exceptions for anonregd's error answers (docs/PROTOCOL.md §5).

Every non-2xx answer has the body ``{"error":{"code":"snake_case","message":"..."}}``; a refused
batch element adds ``"index"``. :func:`error_for` turns it into the class registered for its
code, or the class for its HTTP status when the code is one this version does not know.
"""
from __future__ import annotations

from typing import Dict, Optional, Type


class AnonregError(Exception):
    """Base class of everything this package raises on purpose."""


class DaemonUnreachable(AnonregError):
    """The socket could not be reached (daemon down, wrong path, no permission)."""


class ProtocolError(AnonregError):
    """The daemon answered something that is not protocol v1."""


class IdentityError(AnonregError, ValueError):
    """An identity does not fit the linkage input profile. Never repeats the identity.

    ``problem`` is ``field_count``, ``unsupported_character``, ``empty_name`` or ``invalid_date``.
    """

    def __init__(self, problem: str, message: str) -> None:
        super().__init__(f"{message} [{problem}]")
        self.problem = problem


class APIError(AnonregError):
    """An error answer: HTTP ``status``, ``code``, ``message`` and, for a batch, ``index``."""

    status: int
    code: str
    message: str
    index: Optional[int]

    def __init__(self, status: int, code: str, message: str, index: Optional[int] = None) -> None:
        super().__init__(f"{message} [{code}, HTTP {status}]")
        self.status = status
        self.code = code
        self.message = message
        self.index = index


# By HTTP status.
class BadRequest(APIError):
    """400, 413, 415: the request is malformed; fix the program."""


class Forbidden(APIError):
    """403: this peer may not do this."""


class NotFound(APIError):
    """404."""


class Conflict(APIError):
    """409."""


class Unprocessable(APIError):
    """422: well-formed, but the registry's rules refuse it; nothing was stored."""


class RateLimited(APIError):
    """429: the clinic's OPRF token bucket is empty; retry later."""


class StorageFull(APIError):
    """507: the registry's disk is full; the write was not stored."""


class ServerError(APIError):
    """500 and other 5xx."""


# By code (docs/PROTOCOL.md §5, the table of codes).
class UnknownPeer(Forbidden):
    pass


class RouteForbidden(Forbidden):
    pass


class PrivacyBudgetSpent(Forbidden):
    pass


class RouteNotFound(NotFound):
    pass


class CaseNotFound(NotFound):
    pass


class CodeNotFound(NotFound):
    pass


class MethodNotAllowed(APIError):
    pass


class BodyTooLarge(BadRequest):
    pass


class UnsupportedMediaType(BadRequest):
    pass


class MalformedJSON(BadRequest):
    pass


class UnknownField(BadRequest):
    pass


class MissingField(BadRequest):
    pass


class WrongType(BadRequest):
    pass


class InvalidValue(BadRequest):
    pass


class InvalidMonth(BadRequest):
    pass


class InvalidElement(BadRequest):
    """A blinded element is not a valid ristretto255 element; ``index`` names it in a batch."""


class InvalidLinkage(BadRequest):
    pass


class InvalidDate(APIError):
    """400 (not a real YYYY-MM-DD date) or 422 (a date the rules refuse): see ``status``."""


class ConsentRequired(Unprocessable):
    pass


class InvalidConsent(Unprocessable):
    pass


class UnknownCategory(Unprocessable):
    pass


class UnknownSubstance(Unprocessable):
    pass


class UnknownTreatment(Unprocessable):
    pass


class RelapseActionRequired(Unprocessable):
    pass


class InvalidRelapseAction(Unprocessable):
    pass


class MonitoringCompleted(Unprocessable):
    pass


class InternalError(APIError):
    """500, or 422 when a subject's sealed records could not be read: see ``status``."""


class AuditFailed(ServerError):
    pass


BY_CODE: Dict[str, Type[APIError]] = {
    "unknown_peer": UnknownPeer,
    "forbidden": RouteForbidden,
    "privacy_budget_spent": PrivacyBudgetSpent,
    "not_found": RouteNotFound,
    "case_not_found": CaseNotFound,
    "code_not_found": CodeNotFound,
    "method_not_allowed": MethodNotAllowed,
    "body_too_large": BodyTooLarge,
    "unsupported_media_type": UnsupportedMediaType,
    "malformed_json": MalformedJSON,
    "unknown_field": UnknownField,
    "missing_field": MissingField,
    "wrong_type": WrongType,
    "invalid_value": InvalidValue,
    "invalid_month": InvalidMonth,
    "invalid_element": InvalidElement,
    "invalid_linkage": InvalidLinkage,
    "invalid_date": InvalidDate,
    "rate_limited": RateLimited,
    "consent_required": ConsentRequired,
    "invalid_consent": InvalidConsent,
    "unknown_category": UnknownCategory,
    "unknown_substance": UnknownSubstance,
    "unknown_treatment": UnknownTreatment,
    "relapse_action_required": RelapseActionRequired,
    "invalid_relapse_action": InvalidRelapseAction,
    "monitoring_completed": MonitoringCompleted,
    "storage_full": StorageFull,
    "internal_error": InternalError,
    "audit_failed": AuditFailed,
}


def _by_status(status: int) -> Type[APIError]:
    if status in (400, 413, 415):
        return BadRequest
    if status == 403:
        return Forbidden
    if status == 404:
        return NotFound
    if status == 409:
        return Conflict
    if status == 422:
        return Unprocessable
    if status == 429:
        return RateLimited
    if status == 507:
        return StorageFull
    if status >= 500:
        return ServerError
    return APIError


def error_for(status: int, code: str, message: str, index: Optional[int] = None) -> APIError:
    """The exception for an error answer."""
    cls = BY_CODE.get(code) or _by_status(status)
    return cls(status, code, message, index)
