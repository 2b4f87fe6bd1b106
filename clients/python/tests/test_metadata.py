"""The installed package says what the repository's LICENSE says (issue 22 §7)."""
from importlib import metadata
from pathlib import Path


def test_licence_matches_the_repository():
    meta = metadata.metadata("anonreg-client")
    licence = Path(__file__).resolve().parents[3] / "LICENSE"
    assert "Apache License" in licence.read_text(encoding="utf-8")
    assert meta["License"] == "Apache-2.0"
    assert "License :: OSI Approved :: Apache Software License" in meta.get_all("Classifier")
