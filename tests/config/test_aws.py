"""Bedrock and SigV4 providers in the configuration (vdm/config/aws.py): the region, the
default endpoints, how a provider without a `{P}_API_KEY` is discovered, where its credentials
come from, and that none of them is ever shown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.harness import KEEP_ENV, Place
from vdm.cli.main import app
from vdm.config import aws
from vdm.config.settings import Settings
from vdm.config.sources import load_layers

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYSECRETKEY1"
TOKEN = "IQoJb3JpZ2luX2VjSESSIONTOKEN000000000001"
KEYS = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE000000001", "AWS_SECRET_ACCESS_KEY": SECRET}


def load(**env: str) -> Settings:
    return Settings.from_mapping(env)


# -- the region and the endpoint ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "region"),
    [
        ({"BEDROCK_REGION": "eu-west-3", "AWS_REGION": "us-west-2"}, "eu-west-3"),
        ({"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "ap-south-1"}, "us-west-2"),
        ({"AWS_DEFAULT_REGION": "ap-south-1"}, "ap-south-1"),
    ],
)
def test_the_region_comes_from_the_provider_then_aws_variables(
    env: dict[str, str], region: str
) -> None:
    provider = load(BEDROCK_API_KEY="ABSK-1", **env).providers["bedrock"]
    assert provider.base_url == f"https://bedrock-runtime.{region}.amazonaws.com"
    assert (provider.api_format, provider.auth) == ("bedrock", "bearer")


def test_without_a_region_the_provider_is_a_problem_naming_the_variables() -> None:
    settings = load(BEDROCK_API_KEY="ABSK-1", OPENAI_API_KEY="sk-1")
    assert "bedrock" not in settings.providers
    (problem,) = settings.problems
    assert "BEDROCK_REGION" in problem and "AWS_REGION" in problem
    assert "AWS_DEFAULT_REGION" in problem


def test_a_base_url_of_the_users_names_the_region_for_signing() -> None:
    provider = load(
        BEDROCK_AUTH="sigv4",
        BEDROCK_BASE_URL="https://bedrock-runtime-fips.us-gov-west-1.amazonaws.com",
        **KEYS,
    ).providers["bedrock"]
    assert provider.aws is not None and provider.aws.region == "us-gov-west-1"


# -- discovery ------------------------------------------------------------------------------------


def test_botocores_bedrock_token_configures_bedrock_and_its_own_key_wins() -> None:
    found = load(AWS_BEARER_TOKEN_BEDROCK="ABSK-token", AWS_REGION="us-east-1")
    assert found.providers["bedrock"].api_keys == ("ABSK-token",)
    own = load(
        AWS_BEARER_TOKEN_BEDROCK="ABSK-token", BEDROCK_API_KEY="ABSK-own", AWS_REGION="us-east-1"
    )
    assert own.providers["bedrock"].api_keys == ("ABSK-own",)


def test_sigv4_alone_configures_a_provider_of_any_name() -> None:
    settings = load(
        MYCORP_AUTH="sigv4", MYCORP_API_FORMAT="bedrock", AWS_REGION="eu-west-1", **KEYS
    )
    provider = settings.providers["mycorp"]
    assert (provider.auth, provider.api_keys, provider.passthrough) == ("sigv4", (), False)
    assert provider.aws is not None
    assert (provider.aws.region, provider.aws.service, provider.aws.static) == (
        "eu-west-1",
        "bedrock",
        True,
    )
    assert settings.problems == ()
    assert not any("key" in w for w in settings.warnings)  # only Claude Code's names, unmapped


def test_a_toml_section_that_signs_asks_for_no_key(tmp_path: Path) -> None:
    place = Place.make(tmp_path)
    place.write("user", '[bedrock]\nauth = "sigv4"\n')
    settings = place.load(AWS_REGION="us-east-1", **KEYS)
    assert settings.providers["bedrock"].auth == "sigv4"
    assert not any("has no key" in w for w in settings.warnings)


def test_a_key_beside_sigv4_is_ignored_and_said_so() -> None:
    settings = load(BEDROCK_AUTH="sigv4", BEDROCK_API_KEY="ABSK-x", AWS_REGION="us-east-1", **KEYS)
    assert settings.providers["bedrock"].api_keys == ()
    assert any("BEDROCK_API_KEY is ignored" in w for w in settings.warnings)


# -- mantle ---------------------------------------------------------------------------------------


def test_the_bedrock_preset_in_anthropic_format_is_mantle_signed_as_bedrock_mantle() -> None:
    provider = load(
        BEDROCK_AUTH="sigv4", BEDROCK_API_FORMAT="anthropic", AWS_REGION="us-east-2", **KEYS
    ).providers["bedrock"]
    assert provider.base_url == "https://bedrock-mantle.us-east-2.api.aws/anthropic"
    assert provider.aws is not None and provider.aws.service == "bedrock-mantle"
    keyed = load(BEDROCK_API_FORMAT="anthropic", BEDROCK_API_KEY="ABSK-1", AWS_REGION="us-east-2")
    assert keyed.providers["bedrock"].auth == "bearer"  # mantle takes the API key as Bearer


def test_the_signing_name_follows_the_host_unless_set() -> None:
    mantle = "https://bedrock-mantle.eu-central-1.api.aws/anthropic"
    found = load(MINE_AUTH="sigv4", MINE_API_FORMAT="anthropic", MINE_BASE_URL=mantle, **KEYS)
    assert found.providers["mine"].aws is not None
    assert found.providers["mine"].aws.service == "bedrock-mantle"
    assert found.providers["mine"].aws.region == "eu-central-1"
    chosen = load(
        MINE_AUTH="sigv4",
        MINE_API_FORMAT="anthropic",
        MINE_BASE_URL="https://gateway.example/aws",
        MINE_SIGV4_SERVICE="bedrock-mantle",
        MINE_REGION="us-east-1",
        **KEYS,
    )
    assert chosen.providers["mine"].aws is not None
    assert chosen.providers["mine"].aws.service == "bedrock-mantle"


# -- credentials ----------------------------------------------------------------------------------


def test_a_provider_profile_wins_over_keys_and_keys_over_aws_profile() -> None:
    own = load(BEDROCK_AUTH="sigv4", BEDROCK_PROFILE="dev", AWS_REGION="us-east-1", **KEYS)
    assert own.providers["bedrock"].aws is not None
    assert (own.providers["bedrock"].aws.profile, own.providers["bedrock"].aws.static) == (
        "dev",
        False,
    )
    keys = load(BEDROCK_AUTH="sigv4", AWS_PROFILE="dev", AWS_REGION="us-east-1", **KEYS)
    assert keys.providers["bedrock"].aws is not None
    assert (keys.providers["bedrock"].aws.profile, keys.providers["bedrock"].aws.static) == (
        None,
        True,
    )


def test_without_keys_nor_botocore_the_problem_names_both_fixes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aws, "botocore_available", lambda: False)
    settings = load(BEDROCK_AUTH="sigv4", AWS_REGION="us-east-1")
    (problem,) = settings.problems
    assert "AWS_ACCESS_KEY_ID" in problem and "pip install 'vandamme-proxy[aws]'" in problem
    # Still configured: a request says the same, and a key set later needs no new name.
    assert "bedrock" in settings.providers


def test_the_secret_and_token_are_secrets_and_never_in_a_repr() -> None:
    settings = load(BEDROCK_AUTH="sigv4", AWS_REGION="us-east-1", AWS_SESSION_TOKEN=TOKEN, **KEYS)
    provider = settings.providers["bedrock"]
    assert {SECRET, TOKEN} <= set(settings.secrets)
    assert SECRET not in repr(provider) and TOKEN not in repr(provider.aws)


def test_config_show_never_prints_an_aws_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name not in KEEP_ENV and not name.startswith("PYTEST_"):
            monkeypatch.delenv(name)
    place = Place.make(tmp_path)
    monkeypatch.setenv("HOME", str(place.home))
    monkeypatch.chdir(place.cwd)
    env = {
        "BEDROCK_AUTH": "sigv4",
        "AWS_REGION": "us-east-1",
        "AWS_SESSION_TOKEN": TOKEN,
        "AWS_BEARER_TOKEN_BEDROCK": "ABSK-bearer-token-00001",
        **KEYS,
    }
    result = CliRunner().invoke(app, ["config", "show"], env=env)
    assert result.exit_code == 0, result.output
    assert "bedrock" in result.output and "sigv4" in result.output
    for secret in (SECRET, TOKEN, "ABSK-bearer-token-00001"):
        assert secret not in result.output


def test_region_profile_and_signing_name_are_toml_keys(tmp_path: Path) -> None:
    (tmp_path / "vandamme-config.toml").write_text(
        '[bedrock]\nauth = "sigv4"\nregion = "eu-west-3"\nprofile = "dev"\n'
        'sigv4-service = "bedrock"\n'
    )
    layers = load_layers({}, tmp_path, [])
    values = {k: v.value for layer in layers for k, v in layer.values.items()}
    assert values["BEDROCK_REGION"] == "eu-west-3"
    assert values["BEDROCK_PROFILE"] == "dev"
    assert values["BEDROCK_SIGV4_SERVICE"] == "bedrock"
