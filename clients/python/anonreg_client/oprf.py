"""The client half of RFC 9497, mode 0x00 (OPRF), suite ristretto255-SHA512, on libsodium
through pysodium (docs/CRYPTO.md §OPRF).

The clinic blinds its input (:func:`blind`), anonregd evaluates the blinded element with its
secret key (``POST /v1/oprf/evaluate``), and the clinic unblinds and hashes the answer
(:func:`finalize`). anonregd never sees the input.

Python cannot lock or reliably wipe memory, so a blind lives in ordinary ``bytes`` until the
garbage collector frees it. Keep blinds for as short a time as possible, as
:meth:`anonreg_client.Client.linkage_batch` does.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

import pysodium

MODE = 0x00
SUITE = b"ristretto255-SHA512"
# RFC 9497 §3.1: contextString = "OPRFV1-" || I2OSP(mode, 1) || "-" || identifier.
CONTEXT_STRING = b"OPRFV1-" + bytes([MODE]) + b"-" + SUITE
HASH_TO_GROUP_DST = b"HashToGroup-" + CONTEXT_STRING
ELEMENT_BYTES = pysodium.crypto_core_ristretto255_BYTES
SCALAR_BYTES = pysodium.crypto_core_ristretto255_SCALARBYTES
OUTPUT_BYTES = 64
# Inputs are length-prefixed with I2OSP(len, 2) in Finalize (§3.3.1).
MAX_INPUT_BYTES = 65535


class OPRFError(ValueError):
    """An input the RFC refuses (too long, hashing to the identity) or an invalid element."""


def _i2osp2(value: int) -> bytes:
    return value.to_bytes(2, "big")


def expand_message_xmd_sha512(msg: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 §5.3.1 expand_message_xmd with SHA-512 (b_in_bytes 64, s_in_bytes 128)."""
    b_in_bytes, s_in_bytes = 64, 128
    if len(dst) > 255:
        raise OPRFError("DST longer than 255 bytes")
    ell = -(-length // b_in_bytes)
    if ell > 255 or length > 65535:
        raise OPRFError("requested length too large")
    dst_prime = dst + bytes([len(dst)])
    z_pad = bytes(s_in_bytes)
    b0 = hashlib.sha512(z_pad + msg + _i2osp2(length) + b"\x00" + dst_prime).digest()
    b = [hashlib.sha512(b0 + b"\x01" + dst_prime).digest()]
    for i in range(2, ell + 1):
        prev = bytes(x ^ y for x, y in zip(b0, b[-1]))
        b.append(hashlib.sha512(prev + bytes([i]) + dst_prime).digest())
    return b"".join(b)[:length]


def hash_to_group(data: bytes) -> bytes:
    """RFC 9497 §4.1 HashToGroup: hash_to_ristretto255 (RFC 9380 Appendix B)."""
    uniform = expand_message_xmd_sha512(data, HASH_TO_GROUP_DST, pysodium.crypto_core_ristretto255_HASHBYTES)
    return pysodium.crypto_core_ristretto255_from_hash(uniform)


def validate_element(element: bytes) -> None:
    """DeserializeElement (RFC 9497 §2.1, RFC 9496 §4.3.1): canonical and not the identity.

    libsodium before 1.0.19 (Debian 12 ships 1.0.18) ignores the top bit of the last byte, so
    the check is made here as anonregd makes it.
    """
    if len(element) != ELEMENT_BYTES or element[-1] & 0x80:
        raise OPRFError("not a canonical ristretto255 element")
    if not any(element):
        raise OPRFError("the identity element")
    if not pysodium.crypto_core_ristretto255_is_valid_point(element):
        raise OPRFError("not a canonical ristretto255 element")


@dataclass(frozen=True)
class Blinded:
    """A blinded input: send ``blinded_element``; keep ``blind`` for :func:`finalize`."""

    input: bytes
    blind: bytes
    blinded_element: bytes


def _random_scalar() -> bytes:
    while True:
        scalar = pysodium.crypto_core_ristretto255_scalar_random()
        if any(scalar):
            return scalar


def blind(data: bytes, blind_scalar: Optional[bytes] = None) -> Blinded:
    """RFC 9497 §3.3.1 Blind. ``blind_scalar`` is for known-answer tests only."""
    if len(data) > MAX_INPUT_BYTES:
        raise OPRFError(f"an OPRF input is at most {MAX_INPUT_BYTES} bytes")
    scalar = blind_scalar if blind_scalar is not None else _random_scalar()
    if len(scalar) != SCALAR_BYTES:
        raise OPRFError("a blind is 32 bytes")
    input_element = hash_to_group(data)
    if not any(input_element):
        raise OPRFError("the input hashes to the identity element")
    blinded = pysodium.crypto_scalarmult_ristretto255(scalar, input_element)
    return Blinded(input=data, blind=scalar, blinded_element=blinded)


def finalize(blinded: Blinded, evaluated_element: bytes) -> bytes:
    """RFC 9497 §3.3.1 Finalize: N = blind⁻¹ · evaluatedElement, then
    SHA-512(I2OSP(len(input), 2) || input || I2OSP(len(N), 2) || N || "Finalize")."""
    validate_element(evaluated_element)
    inverse = pysodium.crypto_core_ristretto255_scalar_invert(blinded.blind)
    unblinded = pysodium.crypto_scalarmult_ristretto255(inverse, evaluated_element)
    data = blinded.input
    return hashlib.sha512(_i2osp2(len(data)) + data + _i2osp2(len(unblinded)) + unblinded + b"Finalize").digest()
