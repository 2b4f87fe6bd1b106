"""Clinic client for anonregd, the pseudonymous treatment registry.

- :class:`Client`: every v1 clinic call over the daemon's Unix socket (stdlib HTTP).
- :mod:`anonreg_client.oprf`: the RFC 9497 client half (Blind, Finalize) on libsodium.
- :mod:`anonreg_client.linkage`: the linkage input profile ``anonreg-linkage-v1``.
- :mod:`anonreg_client.errors`: one exception class per error code.
- :mod:`anonreg_client.patient_code`: patient codes as typed or scanned, checked before sending.
"""
from . import errors, linkage, oprf, patient_code
from .client import Client
from .errors import AnonregError, APIError
from .models import (AccessLogEntry, CaseStatus, Checkup, CheckupResult, Consent, DueCase, DueList, Enrolment, Health,
                     Monitoring, SelfRecord)

__version__ = "0.1.0"
__all__ = [
    "Client", "Consent", "Monitoring", "Enrolment", "Checkup", "CheckupResult", "CaseStatus", "DueCase", "DueList",
    "SelfRecord", "AccessLogEntry", "Health", "AnonregError", "APIError", "errors", "linkage", "oprf",
    "patient_code",
]
