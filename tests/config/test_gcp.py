"""Vertex providers in the configuration (vdm/config/gcp.py): the project and location, the
default endpoints, how a provider authenticating with Google credentials is discovered without
a `{P}_API_KEY`, and that its token is never shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vdm.config import gcp
from vdm.config.settings import Settings
from vdm.config.sources import load_layers

TOKEN = "ya29.a0AfH6SMBsecret-access-token-000000000001"


def load(**env: str) -> Settings:
    return Settings.from_mapping(env)


@pytest.mark.parametrize(
    ("location", "url"),
    [
        ("global", "https://aiplatform.googleapis.com/v1"),
        ("us-east5", "https://us-east5-aiplatform.googleapis.com/v1"),
        ("europe-west1", "https://europe-west1-aiplatform.googleapis.com/v1"),
        ("us", "https://aiplatform.us.rep.googleapis.com/v1"),
        ("eu", "https://aiplatform.eu.rep.googleapis.com/v1"),
    ],
)
def test_the_endpoint_follows_the_location(location: str, url: str) -> None:
    provider = load(
        VERTEX_API_KEY=TOKEN, VERTEX_PROJECT="proj-1", VERTEX_LOCATION=location
    ).providers["vertex"]
    assert provider.base_url == url
    assert provider.gcp is not None and provider.gcp.location == location
    assert gcp.location_from_url(url) == location


def test_a_token_and_a_project_are_enough_and_the_location_defaults_to_global() -> None:
    settings = load(VERTEX_API_KEY=TOKEN, ANTHROPIC_VERTEX_PROJECT_ID="proj-cc")
    provider = settings.providers["vertex"]
    assert (provider.api_format, provider.auth) == ("vertex", "bearer")
    assert provider.gcp is not None
    assert provider.gcp.models_prefix == (
        "/projects/proj-cc/locations/global/publishers/anthropic/models"
    )
    assert not provider.gcp.adc
    # Claude Code's names are Vertex's own: no warning that they reach it unmapped.
    assert not [w for w in settings.warnings if "unchanged" in w]


def test_the_project_and_location_come_from_the_provider_then_claude_codes_variables() -> None:
    provider = load(
        VERTEX_API_KEY=TOKEN,
        VERTEX_PROJECT="mine",
        ANTHROPIC_VERTEX_PROJECT_ID="cc",
        GOOGLE_CLOUD_PROJECT="gcloud",
        CLOUD_ML_REGION="us-east5",
    ).providers["vertex"]
    assert provider.gcp is not None
    assert (provider.gcp.project, provider.gcp.location) == ("mine", "us-east5")
    assert provider.base_url == "https://us-east5-aiplatform.googleapis.com/v1"
    other = load(VERTEX_API_KEY=TOKEN, GOOGLE_CLOUD_PROJECT="gcloud").providers["vertex"]
    assert other.gcp is not None and other.gcp.project == "gcloud"


def test_a_base_url_of_the_users_names_the_location() -> None:
    provider = load(
        VERTEX_API_KEY=TOKEN,
        VERTEX_PROJECT="p",
        VERTEX_BASE_URL="https://europe-west4-aiplatform.googleapis.com/v1",
    ).providers["vertex"]
    assert provider.gcp is not None and provider.gcp.location == "europe-west4"


def test_without_a_project_the_provider_is_a_problem_naming_the_variables() -> None:
    settings = load(VERTEX_API_KEY=TOKEN, OPENAI_API_KEY="sk-1")
    assert "vertex" not in settings.providers
    (problem,) = settings.problems
    assert "VERTEX_PROJECT" in problem and "ANTHROPIC_VERTEX_PROJECT_ID" in problem


def test_auth_google_configures_a_provider_without_a_key(tmp_path: Path) -> None:
    key = tmp_path / "sa.json"
    key.write_text(json.dumps({"type": "service_account", "project_id": "from-key"}))
    settings = load(MYGCP_API_FORMAT="vertex", MYGCP_AUTH="google", MYGCP_CREDENTIALS=str(key))
    provider = settings.providers["mygcp"]
    assert (provider.auth, provider.api_keys) == ("google", ())
    assert provider.gcp is not None
    # The service-account key's project, as google.auth.default would return it.
    assert (provider.gcp.project, provider.gcp.adc) == ("from-key", True)
    assert provider.gcp.credentials_file == str(key)
    assert settings.problems == ()


def test_the_vertex_preset_with_auth_google_and_application_credentials(tmp_path: Path) -> None:
    key = tmp_path / "sa.json"
    key.write_text(json.dumps({"type": "service_account", "project_id": "adc-proj"}))
    settings = load(VERTEX_AUTH="google", GOOGLE_APPLICATION_CREDENTIALS=str(key))
    provider = settings.providers["vertex"]
    assert provider.api_format == "vertex" and provider.gcp is not None
    assert provider.gcp.project == "adc-proj"


def test_a_key_beside_auth_google_is_ignored_with_a_warning() -> None:
    settings = load(VERTEX_AUTH="google", VERTEX_PROJECT="p", VERTEX_API_KEY=TOKEN)
    assert settings.providers["vertex"].api_keys == ()
    assert any("VERTEX_API_KEY is ignored" in w for w in settings.warnings)


def test_auth_google_without_google_auth_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gcp, "google_auth_available", lambda: False)
    settings = load(VERTEX_AUTH="google", VERTEX_PROJECT="p", OPENAI_API_KEY="sk-1")
    assert "vertex" not in settings.providers
    assert any("vandamme-proxy[gcp]" in p for p in settings.problems)


def test_a_bad_location_is_a_problem() -> None:
    settings = load(VERTEX_API_KEY=TOKEN, VERTEX_PROJECT="p", VERTEX_LOCATION="us east/../x")
    assert "vertex" not in settings.providers
    assert any("not a Google Cloud location" in p for p in settings.problems)


def test_the_token_is_never_shown() -> None:
    provider = load(VERTEX_API_KEY=TOKEN, VERTEX_PROJECT="p").providers["vertex"]
    assert TOKEN in provider.secrets
    assert TOKEN not in repr(provider)
    assert TOKEN not in " ".join(provider.masked_keys)


def test_toml_keys_set_project_location_and_credentials(tmp_path: Path) -> None:
    (tmp_path / "vandamme-config.toml").write_text(
        '[gcp]\napi-format = "vertex"\nauth = "google"\nproject = "toml-proj"\n'
        'location = "europe-west1"\ncredentials = "/keys/sa.json"\n'
    )
    layers = load_layers({}, tmp_path, [])
    values = {k: v.value for layer in layers for k, v in layer.values.items()}
    assert values["GCP_PROJECT"] == "toml-proj"
    assert values["GCP_LOCATION"] == "europe-west1"
    assert values["GCP_CREDENTIALS"] == "/keys/sa.json"
    provider = Settings.from_mapping(values).providers["gcp"]
    assert provider.gcp is not None
    assert provider.base_url == "https://europe-west1-aiplatform.googleapis.com/v1"
    assert (provider.gcp.project, provider.gcp.credentials_file) == ("toml-proj", "/keys/sa.json")


def test_auth_google_on_another_format_needs_no_project() -> None:
    """Google's OpenAI-compatible endpoint on Vertex takes the same tokens: no project is
    part of its path (the base URL holds it)."""
    settings = load(
        GVX_API_FORMAT="openai",
        GVX_AUTH="google",
        GVX_BASE_URL="https://aiplatform.googleapis.com/v1/projects/p/locations/global/endpoints/openapi",
    )
    provider = settings.providers["gvx"]
    assert provider.gcp is not None and provider.gcp.adc and provider.gcp.project == ""
    assert settings.problems == ()
