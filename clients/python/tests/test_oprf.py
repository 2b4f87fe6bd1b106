"""RFC 9497 A.1.1 (OPRF mode, ristretto255-SHA512): the client half alone, and against the real
daemon initialised with the RFC's seed and key info."""
import json

import pytest

from anonreg_client import oprf
from anonreg_client.errors import InvalidElement

from conftest import RFC_VECTORS

VECTORS = json.loads(RFC_VECTORS.read_text())["vectors"]


@pytest.mark.parametrize("v", VECTORS, ids=["vector1", "vector2"])
def test_blind_and_finalize_reproduce_the_rfc(v):
    blinded = oprf.blind(bytes.fromhex(v["input"]), bytes.fromhex(v["blind"]))
    assert blinded.blinded_element.hex() == v["blindedElement"]
    assert oprf.finalize(blinded, bytes.fromhex(v["evaluationElement"])).hex() == v["output"]


XMD = json.loads((RFC_VECTORS.parent / "expand_message_xmd_SHA512_38.json").read_text())


@pytest.mark.parametrize("t", XMD["tests"], ids=lambda t: f"{t['msg'][:8]}-{t['len_in_bytes']}")
def test_expand_message_xmd_matches_rfc9380_k3(t):
    got = oprf.expand_message_xmd_sha512(t["msg"].encode(), XMD["DST"].encode(), int(t["len_in_bytes"], 16))
    assert got.hex() == t["uniform_bytes"]


def test_finalize_refuses_invalid_evaluations():
    blinded = oprf.blind(b"x")
    for bad in [bytes(32), bytes(31) + b"\x80", b"\xff" * 31 + b"\x7f", b"\x01" * 31]:
        with pytest.raises(oprf.OPRFError):
            oprf.finalize(blinded, bad)


def test_blinds_are_fresh_and_outputs_agree():
    a, b = oprf.blind(b"same"), oprf.blind(b"same")
    assert a.blind != b.blind and a.blinded_element != b.blinded_element


def test_the_daemon_evaluates_the_rfc_vectors_single_and_batched(daemon):
    client = daemon.client()
    elements = [bytes.fromhex(v["blindedElement"]) for v in VECTORS]
    expected = [v["evaluationElement"] for v in VECTORS]
    assert [client.evaluate(e).hex() for e in elements] == expected
    assert [e.hex() for e in client.evaluate_batch(elements + elements[:1])] == expected + expected[:1]
    # The whole clinic side with a random blind: the output is the RFC's (it does not depend on the blind).
    for v in VECTORS:
        assert client.linkage_for_input(bytes.fromhex(v["input"])) == v["output"]
    assert client.linkage_for_inputs([bytes.fromhex(v["input"]) for v in VECTORS]) == [v["output"] for v in VECTORS]


def test_a_bad_element_in_a_batch_raises_with_its_index(daemon):
    client = daemon.client()
    good = bytes.fromhex(VECTORS[0]["blindedElement"])
    batch = [good] * 40
    batch[37] = bytes(32)
    with pytest.raises(InvalidElement) as e:
        client.evaluate_batch(batch)
    assert e.value.index == 37 and e.value.status == 400 and e.value.code == "invalid_element"
    assert "blindedElements[37]" in e.value.message
