"""Secrets shown without being revealed."""

from __future__ import annotations

from vdm.config.secrets import redact, safe_url


def test_credentials_in_a_base_url_are_masked() -> None:
    shown = safe_url("https://user:tok3n-secret-value@llm.example/v1")
    assert "tok3n-secret-value" not in shown and shown.endswith("@llm.example/v1")
    assert safe_url("http://127.0.0.1:8080/v1") == "http://127.0.0.1:8080/v1"
    assert safe_url("https://host/path@x") == "https://host/path@x"


def test_redact_masks_every_occurrence_longest_first() -> None:
    text = redact(
        "k=sk-abcdef0123456789 and sk-abcdef0123456789xyz",
        ["sk-abcdef0123456789", "sk-abcdef0123456789xyz"],
    )
    assert "abcdef0123456789" not in text
    assert text.count("…") == 2
