"""Settings from environment variables and `.env` (names of the original Vandamme Proxy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vdm.config.settings import ConfigError, Settings, read_dotenv


def test_zero_configuration_has_defaults_and_no_provider() -> None:
    settings = Settings.from_mapping({})
    assert settings.providers == {}
    assert settings.default_provider is None
    assert (settings.host, settings.port, settings.timeouts.first_byte, settings.max_retries) == (
        "127.0.0.1",
        8082,
        600.0,
        2,
    )
    assert settings.max_tokens_limit is None  # no clamp unless set


def test_openai_needs_only_its_key() -> None:
    settings = Settings.from_mapping({"OPENAI_API_KEY": "sk-1"})
    openai = settings.providers["openai"]
    assert openai.base_url == "https://api.openai.com/v1"
    assert openai.api_format == "openai"
    assert openai.api_keys == ("sk-1",)
    assert settings.default_provider == "openai"


def test_any_provider_name_is_discovered_with_its_base_url() -> None:
    env = {
        "MYCORP_API_KEY": "k1 k2",
        "MYCORP_BASE_URL": "https://llm.example/v1/",
        "MYCORP_TIMEOUT": "12",
    }
    provider = Settings.from_mapping(env).providers["mycorp"]
    assert provider.api_keys == ("k1", "k2")
    assert provider.base_url == "https://llm.example/v1"
    assert provider.timeout == 12.0


def test_a_provider_without_base_url_is_a_named_problem() -> None:
    settings = Settings.from_mapping({"GROQX_API_KEY": "k"})
    assert "groqx" not in settings.providers
    assert any("GROQX_BASE_URL" in p for p in settings.problems)


def test_proxy_api_key_is_not_a_provider() -> None:
    assert Settings.from_mapping({"PROXY_API_KEY": "secret"}).providers == {}


def test_default_provider() -> None:
    both = {"OPENAI_API_KEY": "a", "ZED_API_KEY": "b", "ZED_BASE_URL": "http://z/v1"}
    assert Settings.from_mapping(both).default_provider == "openai"
    assert Settings.from_mapping({**both, "VDM_DEFAULT_PROVIDER": "ZED"}).default_provider == "zed"
    only = {"ZED_API_KEY": "b", "ZED_BASE_URL": "http://z/v1"}
    assert Settings.from_mapping(only).default_provider == "zed"
    wrong = Settings.from_mapping({**both, "VDM_DEFAULT_PROVIDER": "nope"})
    assert wrong.default_provider == "openai"
    assert any("VDM_DEFAULT_PROVIDER" in p for p in wrong.problems)


def test_custom_headers_global_and_per_provider() -> None:
    env = {
        "OPENAI_API_KEY": "a",
        "CUSTOM_HEADER_X_TEAM": "core",
        "OPENAI_CUSTOM_HEADER_OPENAI_ORGANIZATION": "org-1",
    }
    headers = Settings.from_mapping(env).providers["openai"].custom_headers
    assert headers == {"X-TEAM": "core", "OPENAI-ORGANIZATION": "org-1"}


def test_server_settings() -> None:
    env = {"HOST": "0.0.0.0", "PORT": "9000", "LOG_LEVEL": "debug", "MAX_TOKENS_LIMIT": "4096"}
    settings = Settings.from_mapping(env)
    assert (settings.host, settings.port, settings.log_level, settings.max_tokens_limit) == (
        "0.0.0.0",
        9000,
        "DEBUG",
        4096,
    )


@pytest.mark.parametrize(
    ("name", "value"), [("PORT", "eighty"), ("REQUEST_TIMEOUT", "soon"), ("REQUEST_TIMEOUT", "0")]
)
def test_bad_numbers_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_mapping({name: value})


def test_keys_never_in_repr() -> None:
    settings = Settings.from_mapping({"OPENAI_API_KEY": "sk-very-secret"})
    assert "sk-very-secret" not in repr(settings)


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# comment\n"
        "export OPENAI_API_KEY='sk-from-dotenv'\n"
        'PORT="9100"\n'
        "LOG_LEVEL=debug # trailing comment\n"
        "not a line\n"
    )
    settings = Settings.load(env={"PORT": "9200"}, cwd=tmp_path)
    assert settings.providers["openai"].api_keys == ("sk-from-dotenv",)
    assert settings.port == 9200
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("K='v 1' # comment", "v 1"),
        ('K="a \\"b\\" c" # note', 'a "b" c'),
        ('K="x\\ny"', "x\ny"),
        ("K=plain # comment", "plain"),
        ("K=has#hash", "has#hash"),
        ("K='it''s'", "'it''s'"),
    ],
)
def test_dotenv_values_quotes_and_comments(tmp_path: Path, line: str, value: str) -> None:
    (tmp_path / ".env").write_text(line + "\n")
    assert read_dotenv(tmp_path / ".env") == {"K": value}


def test_credential_headers_are_secrets_for_redaction() -> None:
    settings = Settings.from_mapping(
        {
            "OPENAI_API_KEY": "sk-1234567890",
            "OPENAI_CUSTOM_HEADER_X_AUTH_TOKEN": "tok-abcdefghij",
            "CUSTOM_HEADER_X_TEAM": "platform",
        }
    )
    assert "tok-abcdefghij" in settings.secrets
    assert "platform" not in settings.secrets


def test_a_bad_value_names_its_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_mapping({"OPENAI_API_KEY": "k", "OPENAI_AUTH": "magic"})
    assert caught.value.var == "OPENAI_AUTH" and "(env)" in str(caught.value)


def test_missing_dotenv_is_fine(tmp_path: Path) -> None:
    assert read_dotenv(tmp_path / ".env") == {}


def test_gemini_defaults_to_the_native_api() -> None:
    gemini = Settings.from_mapping({"GEMINI_API_KEY": "g-key"}).providers["gemini"]
    assert (gemini.api_format, gemini.auth) == ("gemini", "x-goog-api-key")
    assert gemini.base_url == "https://generativelanguage.googleapis.com/v1beta"


@pytest.mark.parametrize(
    "url",
    [
        "https://generativelanguage.googleapis.com/v1beta/openai",
        "https://generativelanguage.googleapis.com/v1beta/openai/",
        "https://my-relay.example/gemini/openai",
    ],
)
def test_a_gemini_openai_base_url_kept_from_before_keeps_its_dialect(url: str) -> None:
    """Users who set the OpenAI-compatible URL when it was the preset's default keep working
    after the preset moved to the native API."""
    gemini = Settings.from_mapping({"GEMINI_API_KEY": "g", "GEMINI_BASE_URL": url}).providers[
        "gemini"
    ]
    assert (gemini.api_format, gemini.auth) == ("openai", "bearer")


def test_an_explicit_format_wins_over_the_url() -> None:
    env = {
        "GEMINI_API_KEY": "g",
        "GEMINI_BASE_URL": "https://relay.example/openai",
        "GEMINI_API_FORMAT": "gemini",
    }
    assert Settings.from_mapping(env).providers["gemini"].api_format == "gemini"
