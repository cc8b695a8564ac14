"""Model discovery (`GET /v1/models`) and what `vdm wrap` tells Claude Code about its model.

* the context-window table, the discoverable ids and the environment for Claude Code (pure);
* the router takes `claude-vdm/<name>` as `<name>`;
* the catalog answers at once: the first-ever fetch waits at most FIRST_WAIT, a stale list is
  answered and refreshed in the background, a failed refresh keeps the last list (unit, with
  a stub client and a fake clock);
* end to end over real HTTP with two fake providers: the listing Claude Code keeps, each of
  its ids reaching the right provider and model through the anthropic SDK, `limit` /
  `after_id` paging as the SDK drives it, a slow provider never holding the answer;
* `vdm wrap`'s child environment.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import anyio
import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, JsonReply, Recorded, Reply
from tests.harness import RunningVdm, running_vdm
from vdm.cli.wrap import Session, child_env
from vdm.config.settings import Settings
from vdm.protocol.context import (
    claude_code_env,
    claude_code_knows,
    context_window,
    discoverable,
    discoverable_id,
    tokens_text,
)
from vdm.protocol.errors import VdmError
from vdm.routing.resolve import resolve
from vdm.server import catalog
from vdm.server.catalog import ModelCatalog, models_from_answer, page

#: What Claude Code 2.1.330 keeps of a discovered list.
CLAUDE_CODE_FILTER = re.compile(r"(claude|anthropic)", re.IGNORECASE)


# --- the context-window table ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "model", "window"),
    [
        ("openai", "gpt-5.6-terra", 1_050_000),
        ("openai", "gpt-5.6-sol", 1_050_000),
        ("azure", "gpt-5.5", 1_050_000),
        ("openai", "gpt-5.2", 400_000),
        ("openrouter", "openai/gpt-5-mini", 400_000),
        ("openai", "gpt-5.1-chat-latest", 128_000),
        ("openai", "gpt-4o-mini", 128_000),
        ("openai", "o3-mini", 200_000),
        ("gemini", "gemini-3-pro-preview", 1_048_576),
        ("gemini", "gemini-flash-latest", 1_048_576),
        ("deepseek", "deepseek-v4-pro", 1_048_576),
        ("deepseek", "deepseek-chat", 1_048_576),
        ("moonshot", "kimi-k2.7-code", 262_144),
        ("moonshot", "kimi-k3", 1_048_576),
        ("zai", "glm-4.6", 202_752),
        ("zai", "glm-4.5-air", 131_072),
        ("together", "Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8", 262_144),
        ("mistral", "devstral-medium-latest", 262_144),
        ("xai", "grok-code-fast-1", 256_000),
        ("xai", "grok-4-fast", 2_000_000),
        ("groq", "openai/gpt-oss-120b", 131_072),
        ("openrouter", "anthropic/claude-sonnet-4.5", 200_000),
    ],
)
def test_context_windows_of_known_models(family: str, model: str, window: int) -> None:
    assert context_window(family, model) == window


def test_unknown_models_have_no_window() -> None:
    assert context_window("openai", "text-embedding-3-large") is None
    assert context_window("mycorp", "house-model-7") is None
    # deepseek-chat is V4 only on DeepSeek itself: elsewhere it is an older, smaller model.
    assert context_window("openrouter", "deepseek/deepseek-chat") is None


def test_windows_are_written_as_people_read_them() -> None:
    assert [tokens_text(n) for n in (1_050_000, 1_048_576, 2_000_000, 262_144, 128_000)] == [
        "1.05M",
        "1.05M",
        "2M",
        "262k",
        "128k",
    ]


# --- discoverable ids and the router ----------------------------------------------------------


def test_discoverable_ids_pass_claude_codes_filter() -> None:
    for name in ("fast", "openai:gpt-5.6-terra", "my_alias", "Claude-Local"):
        assert CLAUDE_CODE_FILTER.search(discoverable_id(name))
    assert discoverable_id("fast") == "claude-vdm/fast"
    assert discoverable_id("anthropic:claude-sonnet-4-5") == "anthropic:claude-sonnet-4-5"
    assert discoverable("openrouter:anthropic/claude-opus-4.1")
    assert not discoverable("openai:gpt-4o")


def _settings(**env: str) -> Settings:
    return Settings.from_mapping(env)


def test_the_router_takes_a_discoverable_id_as_the_name_after_its_prefix() -> None:
    settings = _settings(
        CORP_API_KEY="sk-corp",
        CORP_BASE_URL="http://127.0.0.1:9/v1",
        CORP_ALIAS_FAST="gpt-4o-mini",
        LAB_API_KEY="sk-lab",
        LAB_BASE_URL="http://127.0.0.1:9/v1",
        VDM_DEFAULT_PROVIDER="corp",
    )
    pairs = [
        ("claude-vdm/fast", "fast"),
        ("Claude-VDM/fast", "fast"),
        ("claude-vdm/lab:o3-mini", "lab:o3-mini"),
        ("claude-vdm/corp:fast", "corp:fast"),
    ]
    for discovered, name in pairs:
        route, plain = resolve(discovered, settings), resolve(name, settings)
        assert (route.provider.name, route.model) == (plain.provider.name, plain.model)
    assert resolve("claude-vdm/fast", settings).steps[0] == (
        "'claude-vdm/fast' is the discoverable id of 'fast'"
    )
    with pytest.raises(VdmError) as empty:
        resolve("claude-vdm/", settings)
    assert empty.value.status == 400 and "must not be empty" in empty.value.message
    # Without the prefix, a name is not touched: `claude-vdm-fast` is no discoverable id.
    assert resolve("claude-vdm-fast", settings).steps[0].startswith("'claude-vdm-fast' contains")


# --- what Claude Code is told ----------------------------------------------------------------


def test_claude_codes_own_names_are_recognised() -> None:
    for name in ("opus", "Sonnet[1m]", "default", "claude-opus-5-5", "claude-3-5-haiku-20241022"):
        assert claude_code_knows(name), name
    assert claude_code_knows("openrouter:anthropic/claude-sonnet-4.5")
    for name in ("fast", "claude-vdm/fast", "openai:gpt-5.6-terra", "claude-local"):
        assert not claude_code_knows(name), name


def test_an_unknown_name_gets_a_picker_entry_and_its_real_window() -> None:
    env = claude_code_env("claude-vdm/fast", "openai:gpt-5.6-terra", 1_050_000, {})
    assert env == {
        "ANTHROPIC_CUSTOM_MODEL_OPTION": "claude-vdm/fast",
        "ANTHROPIC_CUSTOM_MODEL_OPTION_NAME": "fast",
        "ANTHROPIC_CUSTOM_MODEL_OPTION_DESCRIPTION": "vdm → openai:gpt-5.6-terra · 1.05M context",
        "CLAUDE_CODE_MAX_CONTEXT_TOKENS": "1050000",
    }
    # Without a known window: the picker entry only (Claude Code keeps assuming 1M).
    assert "CLAUDE_CODE_MAX_CONTEXT_TOKENS" not in claude_code_env("x", "corp:x", None, {})


def test_what_the_user_set_is_kept() -> None:
    mine = {"ANTHROPIC_CUSTOM_MODEL_OPTION": "other", "CLAUDE_CODE_MAX_CONTEXT_TOKENS": "5"}
    assert claude_code_env("fast", "corp:gpt-4o", 128_000, mine) == {}
    # A custom option of your own keeps its name and description too.
    only_option = {"ANTHROPIC_CUSTOM_MODEL_OPTION": "other"}
    assert claude_code_env("fast", "corp:gpt-4o", 128_000, only_option) == {
        "CLAUDE_CODE_MAX_CONTEXT_TOKENS": "128000"
    }


def test_a_claude_name_routed_elsewhere_only_caps_compaction_to_a_smaller_window() -> None:
    assert claude_code_env("claude-opus-5-5", "zai:glm-4.6", 202_752, {}) == {
        "CLAUDE_CODE_AUTO_COMPACT_WINDOW": "202752"
    }
    # Never raised above what Claude Code picks for its own models, never for Claude itself.
    assert claude_code_env("claude-opus-5-5", "openai:gpt-5.6-sol", 1_050_000, {}) == {}
    assert claude_code_env("claude-haiku-4-5", "anthropic:claude-haiku-4-5", 200_000, {}) == {}


# --- the catalog, unit: answers at once ------------------------------------------------------


class _StubClient:
    """Answers get_json after `delay` seconds with `answer` (or raises `error`)."""

    def __init__(self, answer: Any, delay: float = 0.0) -> None:
        self.answer = answer
        self.delay = delay
        self.error: VdmError | None = None
        self.calls = 0

    async def get_json(self, path: str, *, client_key: str | None = None) -> Any:
        self.calls += 1
        await anyio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return self.answer


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _openai_list(*ids: str) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": i, "object": "model", "created": 1} for i in ids]}


def _catalog(stub: _StubClient, clock: _Clock) -> ModelCatalog:
    settings = _settings(CORP_API_KEY="sk-corp", CORP_BASE_URL="http://127.0.0.1:9/v1")
    return ModelCatalog(settings, lambda config: stub, clock)  # type: ignore[arg-type, return-value]


def _ids(answer: dict[str, Any]) -> list[str]:
    return [m["id"] for m in answer["data"]]


@pytest.mark.anyio
async def test_a_slow_first_fetch_is_waited_for_at_most_first_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(catalog, "FIRST_WAIT", 0.2)
    stub, clock = _StubClient(_openai_list("gpt-4o"), delay=0.6), _Clock()
    models = _catalog(stub, clock)
    started = time.monotonic()
    first = await models.models({}, None)
    waited = time.monotonic() - started
    assert 0.15 < waited < 0.5, f"the first answer took {waited:.2f} s"
    assert "corp:gpt-4o" not in _ids(first)
    # A second answer while the fetch runs neither waits nor starts another fetch.
    started = time.monotonic()
    assert "corp:gpt-4o" not in _ids(await models.models({}, None))
    assert time.monotonic() - started < 0.1 and stub.calls == 1
    await anyio.sleep(0.6)
    assert "corp:gpt-4o" in _ids(await models.models({}, None))
    assert stub.calls == 1
    await models.aclose()


@pytest.mark.anyio
async def test_a_stale_list_is_answered_and_refreshed_in_the_background() -> None:
    stub, clock = _StubClient(_openai_list("gpt-4o")), _Clock()
    models = _catalog(stub, clock)
    assert "corp:gpt-4o" in _ids(await models.models({}, None))
    stub.answer, stub.delay = _openai_list("gpt-4o", "gpt-5.6-terra"), 0.3
    clock.now += catalog.MODELS_TTL + 1
    started = time.monotonic()
    stale = await models.models({}, None)
    assert time.monotonic() - started < 0.1, "a stale list was refreshed before answering"
    assert "corp:gpt-5.6-terra" not in _ids(stale)
    await anyio.sleep(0.05)
    assert stub.calls == 2
    await anyio.sleep(0.5)
    fresh = await models.models({}, None)
    assert "corp:gpt-5.6-terra" in _ids(fresh) and stub.calls == 2
    terra = next(m for m in fresh["data"] if m["id"] == "corp:gpt-5.6-terra")
    assert terra["max_input_tokens"] == 1_050_000
    assert terra["description"] == "corp:gpt-5.6-terra · 1.05M context"
    await models.aclose()


@pytest.mark.anyio
async def test_a_failed_refresh_keeps_the_last_list_and_is_retried_later() -> None:
    stub, clock = _StubClient(_openai_list("gpt-4o")), _Clock()
    models = _catalog(stub, clock)
    await models.models({}, None)
    stub.error = VdmError(502, "corp returned HTTP 503: down")
    clock.now += catalog.MODELS_TTL + 1
    await models.models({}, None)
    await anyio.sleep(0.05)
    assert "corp:gpt-4o" in _ids(await models.models({}, None)) and stub.calls == 2
    clock.now += catalog.FAILURE_TTL - 1
    await models.models({}, None)
    assert stub.calls == 2, "retried before FAILURE_TTL"
    clock.now += 2
    await models.models({}, None)
    await anyio.sleep(0.05)
    assert stub.calls == 3
    await models.aclose()


@pytest.mark.anyio
async def test_shutdown_ends_a_fetch_still_running() -> None:
    stub = _StubClient(_openai_list("gpt-4o"), delay=30)
    models = _catalog(stub, _Clock())
    with anyio.fail_after(catalog.FIRST_WAIT + 1):
        await models.models({}, None)
        await models.aclose()
    assert models._fetches == {}


def test_provider_declared_windows_win_over_the_table() -> None:
    answer = {
        "data": [
            {"id": "moonshotai/kimi-k3", "context_length": 524_288},  # OpenRouter's field
            {"id": "house/model-x"},
        ]
    }
    kimi, house = models_from_answer("openrouter", answer, "openrouter")
    assert kimi["max_input_tokens"] == 524_288 and "524k context" in kimi["description"]
    assert "max_input_tokens" not in house and house["description"] == "openrouter:house/model-x"
    gemini = models_from_answer("gemini", {"models": [{"name": "models/g", "inputTokenLimit": 9}]})
    assert gemini[0]["id"] == "gemini:g" and gemini[0]["max_input_tokens"] == 9


def test_pages_follow_anthropics_cursors() -> None:
    data = [{"id": str(i)} for i in range(5)]
    first = page(data, {"limit": "2"})
    assert [m["id"] for m in first["data"]] == ["0", "1"] and first["has_more"]
    assert (first["first_id"], first["last_id"]) == ("0", "1")
    last = page(data, {"limit": "2", "after_id": "3"})
    assert [m["id"] for m in last["data"]] == ["4"] and not last["has_more"]
    back = page(data, {"limit": "2", "before_id": "3"})
    assert [m["id"] for m in back["data"]] == ["1", "2"] and back["has_more"]
    everything = page(data, {})
    assert len(everything["data"]) == 5 and not everything["has_more"]
    assert page(data, {"after_id": "gone"})["data"] == []
    for bad in ("0", "1001", "ten"):
        with pytest.raises(VdmError) as error:
            page(data, {"limit": bad})
        assert error.value.status == 400 and "limit" in error.value.message


# --- end to end: what Claude Code's discovery gets ------------------------------------------


@pytest.fixture
def both(fake: FakeOpenAI, other: FakeOpenAI) -> Iterator[RunningVdm]:
    env = {
        "CORP_API_KEY": "sk-corp",
        "CORP_BASE_URL": fake.base_url,
        "CORP_ALIAS_FAST": "gpt-4o-mini",
        "CORP_ALIAS_CLAUDE_LOCAL": "gpt-4o",
        "LAB_API_KEY": "sk-lab",
        "LAB_BASE_URL": other.base_url,
        "LAB_ALIAS_SMART": "o3-mini",
        "VDM_DEFAULT_PROVIDER": "corp",
        "VDM_FALLBACK_OPUS": "gpt-4o",
    }
    with running_vdm(env) as server:
        yield server


#: The ids Claude Code keeps from `both`'s listing, and where each must go.
DISCOVERED = {
    "claude-vdm/fast": ("corp", "gpt-4o-mini"),
    "claude-local": ("corp", "gpt-4o"),
    "claude-vdm/smart": ("lab", "o3-mini"),
    "claude-vdm/corp:gpt-4o-mini": ("corp", "gpt-4o-mini"),
    "claude-vdm/corp:gpt-4o": ("corp", "gpt-4o"),
    "claude-vdm/lab:o3-mini": ("lab", "o3-mini"),
}


def test_discovery_lists_aliases_and_routed_models_under_ids_claude_code_keeps(
    both: RunningVdm, fake: FakeOpenAI, other: FakeOpenAI
) -> None:
    response = httpx.get(f"{both.url}/v1/models", params={"limit": "1000"}, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    kept = [m for m in body["data"] if CLAUDE_CODE_FILTER.search(m["id"])]
    assert sorted(m["id"] for m in kept) == sorted(DISCOVERED)
    # Aliases first, then the models they route to.
    assert {m["id"] for m in kept[-3:]} == {i for i in DISCOVERED if ":" in i}
    by_id = {m["id"]: m for m in body["data"]}
    assert by_id["claude-vdm/fast"]["display_name"] == "fast"
    assert by_id["claude-vdm/fast"]["description"] == "alias → corp:gpt-4o-mini · 128k context"
    assert by_id["claude-vdm/fast"]["max_input_tokens"] == 128_000
    assert by_id["claude-vdm/lab:o3-mini"]["display_name"] == "o3-mini (lab)"
    assert by_id["claude-vdm/lab:o3-mini"]["description"] == "lab:o3-mini · 200k context"
    # Every entry, discoverable or not, says what it is.
    for model in body["data"]:
        assert model["type"] == "model" and model["display_name"] and model["description"]
    # The aliases by their own names and the providers' lists are there too; the fallback
    # `opus` is Claude Code's own tier name (its picker has it) and gets no discoverable id.
    assert {"fast", "smart", "opus", "corp:gpt-4o", "lab:o3-mini"} <= set(by_id)
    assert not [i for i in by_id if i.endswith("/opus")]
    assert body["has_more"] is False


@pytest.mark.parametrize("discovered", list(DISCOVERED))
def test_each_discovered_id_reaches_its_provider_and_model(
    both: RunningVdm, fake: FakeOpenAI, other: FakeOpenAI, discovered: str
) -> None:
    provider, model = DISCOVERED[discovered]
    with anthropic.Anthropic(base_url=both.url, api_key="sk-client", max_retries=0) as client:
        message = client.messages.create(
            model=discovered, max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )
    assert message.content[0].text == "Hello from fake"  # type: ignore[union-attr]
    upstream, idle = (fake, other) if provider == "corp" else (other, fake)
    chats = [r for r in upstream.requests if r.path.endswith("/chat/completions")]
    assert [r.json["model"] for r in chats] == [model]
    assert not [r for r in idle.requests if r.path.endswith("/chat/completions")]


def test_the_sdk_pages_through_the_whole_list(both: RunningVdm) -> None:
    everything = httpx.get(f"{both.url}/v1/models", timeout=10).json()["data"]
    with anthropic.Anthropic(base_url=both.url, api_key="sk-client", max_retries=0) as client:
        first = client.models.list(limit=3)
        assert len(first.data) == 3 and first.has_more
        paged = [m.id for m in client.models.list(limit=3)]  # follows after_id to the end
    assert paged == [m["id"] for m in everything]
    refused = httpx.get(f"{both.url}/v1/models?limit=0", timeout=10)
    assert refused.status_code == 400
    assert refused.json()["error"]["type"] == "invalid_request_error"


class _SlowModels(FakeOpenAI):
    """An OpenAI-compatible provider whose models list takes `MODELS_DELAY` seconds."""

    MODELS_DELAY = 2.5

    def _route(self, request: Recorded) -> Reply:
        if request.method == "GET" and request.path.endswith("/models"):
            return JsonReply(_openai_list("slow-model"), delay=self.MODELS_DELAY)
        return super()._route(request)


def test_a_slow_provider_never_holds_the_answer_for_long(fake: FakeOpenAI) -> None:
    with _SlowModels() as slow:
        env = {
            "CORP_API_KEY": "sk-corp",
            "CORP_BASE_URL": fake.base_url,
            "SLOW_API_KEY": "sk-slow",
            "SLOW_BASE_URL": slow.base_url,
            "VDM_DEFAULT_PROVIDER": "corp",
        }
        with running_vdm(env) as vdm:
            started = time.monotonic()
            first = httpx.get(f"{vdm.url}/v1/models", timeout=10)
            waited = time.monotonic() - started
            ids = [m["id"] for m in first.json()["data"]]
            # Claude Code gives up after 3 s: the first answer comes well before that.
            assert waited < catalog.FIRST_WAIT + 0.5, f"the first answer took {waited:.2f} s"
            assert "corp:gpt-4o" in ids and "slow:slow-model" not in ids
            deadline = time.monotonic() + _SlowModels.MODELS_DELAY + 3
            while "slow:slow-model" not in ids and time.monotonic() < deadline:
                time.sleep(0.2)
                started = time.monotonic()
                ids = [
                    m["id"] for m in httpx.get(f"{vdm.url}/v1/models", timeout=10).json()["data"]
                ]
                assert time.monotonic() - started < 0.5, "a later answer waited for the fetch"
            assert "slow:slow-model" in ids, "the slow list never arrived"
        assert len([r for r in slow.requests if r.path.endswith("/models")]) == 1


# --- `vdm wrap`: the child's environment ---------------------------------------------------------


def _wrap_env(settings: Settings, command: list[str], **user: str) -> dict[str, str]:
    return child_env({"HOME": "/nonexistent", **user}, Session("http://x", "s"), settings, command)


def test_wrap_tells_claude_code_the_routed_model_and_its_window() -> None:
    settings = _settings(
        CORP_API_KEY="sk-corp", CORP_BASE_URL="http://127.0.0.1:9/v1", CORP_ALIAS_FAST="gpt-4o"
    )
    env = _wrap_env(settings, ["claude", "--model", "fast"])
    assert env["ANTHROPIC_CUSTOM_MODEL_OPTION"] == "fast"
    assert env["ANTHROPIC_CUSTOM_MODEL_OPTION_DESCRIPTION"] == "vdm → corp:gpt-4o · 128k context"
    assert env["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == "128000"
    assert "CLAUDE_CODE_AUTO_COMPACT_WINDOW" not in env
    # -m, ANTHROPIC_MODEL: the same; the user's own value is kept.
    assert _wrap_env(settings, ["claude", "-m", "fast"])["CLAUDE_CODE_MAX_CONTEXT_TOKENS"]
    assert _wrap_env(settings, ["claude"], ANTHROPIC_MODEL="fast")["ANTHROPIC_CUSTOM_MODEL_OPTION"]
    mine = _wrap_env(settings, ["claude", "--model", "fast"], CLAUDE_CODE_MAX_CONTEXT_TOKENS="9")
    assert mine["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == "9"


def test_wrap_caps_compaction_when_claude_codes_default_goes_to_a_smaller_model() -> None:
    settings = _settings(ZAI_API_KEY="sk-zai")  # opus → glm-4.6 (202,752 tokens)
    env = _wrap_env(settings, ["claude"])
    assert env["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] == "202752"
    assert "ANTHROPIC_CUSTOM_MODEL_OPTION" not in env  # opus is in Claude Code's picker
    assert "CLAUDE_CODE_MAX_CONTEXT_TOKENS" not in env


def test_wrap_adds_nothing_for_a_model_that_does_not_resolve() -> None:
    settings = _settings(CORP_API_KEY="sk-corp", CORP_BASE_URL="http://127.0.0.1:9/v1")
    env = _wrap_env(settings, ["claude", "--model", "nope:model"])
    assert not [k for k in env if "CUSTOM_MODEL" in k or "CONTEXT" in k or "COMPACT" in k]


def test_child_env_without_settings_says_nothing_about_models(tmp_path: Path) -> None:
    env = child_env({"HOME": str(tmp_path)}, Session("http://x", "s"))
    assert not [k for k in env if "CUSTOM_MODEL" in k or "CONTEXT" in k]
