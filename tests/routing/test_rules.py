"""Request-aware routing rules (`[[routing.rules]]`, docs/routing.md): reading and checking
them, the request facts of each dialect, which rule wins, `vdm config show --resolve`'s
explanation, `vdm config validate`, and the `vdm wrap` summary line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.harness import KEEP_ENV, Place
from vdm.cli.main import app
from vdm.config.settings import ConfigError
from vdm.routing.resolve import resolve
from vdm.routing.rules import Facts, facts_from_body
from vdm.usage.recorder import Request, UsageRecorder
from vdm.usage.summary import summary_dict, summary_text

TOML = """
default-provider = "openai"

[openai]
api-key = "sk-openai-1111"

[openai.aliases]
fast = "gpt-4o-mini"

[groq]
api-key = "gsk-2222"

[deepseek]
api-key = "sk-ds-3333"

[[routing.rules]]
when = "background"
use = "groq:llama-3.1-8b-instant"

[[routing.rules]]
when = "subagent"
use = "fast"

[[routing.rules]]
when = "thinking"
model = "*opus*"
use = "openai:gpt-5.6-terra"

[[routing.rules]]
when = "long-context"
above = 1000
use = "groq:kimi-k2"

[[routing.rules]]
when = "images"
use = "openai:gpt-4o"

[[routing.rules]]
when = "web-search"
use = "openai:gpt-5.6-sol"
"""


@pytest.fixture
def place(tmp_path: Path) -> Place:
    place = Place.make(tmp_path)
    place.write("vandamme-config.toml", TOML)
    return place


def _cli(place: Place, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in list(os.environ):
        if name not in KEEP_ENV and not name.startswith("PYTEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(place.home))
    monkeypatch.chdir(place.cwd)
    return CliRunner()


# -- configuration ------------------------------------------------------------------------------


def test_rules_are_read_in_order_with_their_source(place: Place) -> None:
    rules = place.load().rules
    assert [r.when for r in rules] == [
        "background",
        "subagent",
        "thinking",
        "long-context",
        "images",
        "web-search",
    ]
    assert rules[2].models == ("*opus*",) and rules[2].label == "thinking[*opus*]"
    assert rules[3].above == 1000
    assert rules[0].source.endswith("vandamme-config.toml") and rules[0].number == 1


def test_the_project_file_s_rules_replace_the_user_file_s(place: Place) -> None:
    place.write("user", '[[routing.rules]]\nwhen = "thinking"\nuse = "openai:o3"\n')
    assert len(place.load().rules) == 6  # the project's, not both
    place.project_toml.write_text("[openai]\napi-key = 'k'\n", encoding="utf-8")
    assert [r.use for r in place.load().rules] == ["openai:o3"]


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ('when = "sometimes"\nuse = "fast"', "when = 'sometimes' is not one of background"),
        ('when = "thinking"', "`use` must name the target"),
        ('when = "thinking"\nuse = "nosuch:model"', "provider 'nosuch', which is not configured"),
        ('when = "long-context"\nuse = "fast"', "needs `above`"),
        ('when = "thinking"\nabove = 5\nuse = "fast"', "`above` applies only to"),
        ('when = "thinking"\nuse = "fast"\nmodels = "x"', "unknown key 'models'"),
    ],
)
def test_a_wrong_rule_is_a_config_error_naming_it(place: Place, rule: str, words: str) -> None:
    place.write("vandamme-config.toml", f"[openai]\napi-key = 'k'\n\n[[routing.rules]]\n{rule}\n")
    with pytest.raises(ConfigError) as caught:
        place.load()
    assert "[[routing.rules]] #1" in str(caught.value) and words in str(caught.value)


def test_config_validate_lists_a_wrong_rule(place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    place.write(
        "vandamme-config.toml",
        "[openai]\napi-key = 'k'\n\n[[routing.rules]]\nwhen = 'someday'\nuse = 'fast'\n",
    )
    result = _cli(place, monkeypatch).invoke(app, ["config", "validate"])
    assert result.exit_code == 1
    assert "when = 'someday' is not one of" in result.output


def test_config_validate_lists_a_rule_whose_target_cannot_be_followed(
    place: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    place.write(
        "vandamme-config.toml",
        "[openai]\napi-key = 'k'\n[openai.aliases]\na = 'b'\nb = 'a'\n\n"
        "[[routing.rules]]\nwhen = 'thinking'\nuse = 'a'\n",
    )
    result = _cli(place, monkeypatch).invoke(app, ["config", "validate"])
    assert result.exit_code == 1
    assert "[[routing.rules]] #1: alias cycle" in result.output


# -- facts --------------------------------------------------------------------------------------

PNG = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}


def test_anthropic_facts() -> None:
    body = {
        "model": "claude-opus-4-6",
        "thinking": {"type": "adaptive"},
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [{"type": "image", "source": PNG}],
                    }
                ],
            }
        ],
    }
    facts = facts_from_body("anthropic", body, "claude-opus-4-6")
    assert (facts.thinking, facts.images, facts.web_search, facts.background) == (
        True,
        True,
        True,
        False,
    )
    plain = facts_from_body("anthropic", {"thinking": {"type": "disabled"}, "messages": []})
    assert (plain.thinking, plain.images, plain.web_search) == (False, False, False)


def test_a_haiku_request_without_tools_is_background() -> None:
    assert facts_from_body("anthropic", {"messages": []}, "claude-haiku-4-5").background
    tools = {"messages": [], "tools": [{"name": "Bash", "input_schema": {}}]}
    assert not facts_from_body("anthropic", tools, "claude-haiku-4-5").background


def test_chat_and_responses_facts() -> None:
    chat = {
        "reasoning_effort": "high",
        "web_search_options": {},
        "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
    }
    facts = facts_from_body("openai", chat)
    assert (facts.thinking, facts.images, facts.web_search) == (True, True, True)
    assert not facts_from_body("openai", {"reasoning_effort": "none", "messages": []}).thinking
    responses = {
        "reasoning": {"effort": "medium"},
        "tools": [{"type": "web_search"}],
        "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}],
    }
    facts = facts_from_body("responses", responses)
    assert (facts.thinking, facts.images, facts.web_search) == (True, True, True)
    assert not facts_from_body("responses", {"input": "hi"}).images


def test_odd_shapes_count_as_absent() -> None:
    body = {"thinking": "yes", "messages": "hi", "tools": {"a": 1}}
    facts = facts_from_body("anthropic", body)
    assert (facts.thinking, facts.images, facts.web_search) == (False, False, False)


# -- matching -----------------------------------------------------------------------------------


def test_the_first_matching_rule_wins_and_its_use_is_resolved(place: Place) -> None:
    settings = place.load()
    route = resolve("claude-opus-4-6", settings, Facts(background=True, thinking=True))
    assert (route.label, route.rule) == ("groq:llama-3.1-8b-instant", "background")
    route = resolve("claude-opus-4-6", settings, Facts(subagent=True))
    assert (route.label, route.rule) == ("openai:gpt-4o-mini", "subagent")  # alias `fast`
    assert "routing rule #2" in route.steps[0]


def test_a_model_pattern_restricts_a_rule(place: Place) -> None:
    settings = place.load()
    assert resolve("claude-opus-4-6", settings, Facts(thinking=True)).rule == "thinking[*opus*]"
    route = resolve("claude-sonnet-4-5", settings, Facts(thinking=True))
    assert route.rule is None and route.label == "openai:gpt-5.6-terra"  # the sonnet fallback
    assert route.steps[0] == "no routing rule matched"


def test_long_context_counts_only_when_reached(place: Place) -> None:
    settings = place.load()
    counted: list[int] = []

    def count() -> int:
        counted.append(1)
        return 5000

    route = resolve("gpt-4o", settings, Facts(background=True, count=count))
    assert route.rule == "background" and counted == []  # an earlier rule won: never counted
    route = resolve("gpt-4o", settings, Facts(count=count))
    assert (route.label, route.rule, counted) == ("groq:kimi-k2", "long-context", [1])
    assert "5,000 input tokens, above 1,000" in route.steps[0]
    assert resolve("gpt-4o", settings, Facts(tokens=1000)).rule is None  # not above


def test_images_go_elsewhere_only_when_the_model_has_no_vision(place: Place) -> None:
    settings = place.load()
    route = resolve("deepseek:deepseek-chat", settings, Facts(images=True))
    assert (route.label, route.rule) == ("openai:gpt-4o", "images")
    assert resolve("openai:gpt-4.1", settings, Facts(images=True)).rule is None


def test_web_search_rule(place: Place) -> None:
    route = resolve("fast", place.load(), Facts(web_search=True))
    assert (route.label, route.rule) == ("openai:gpt-5.6-sol", "web-search")


def test_without_facts_rules_are_not_tried(place: Place) -> None:
    route = resolve("claude-haiku-4-5", place.load())
    assert route.rule is None and route.provider.name == "openai"


# -- vdm config show --resolve ------------------------------------------------------------------


def test_config_show_resolve_explains_a_rule_hit(
    place: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = _cli(place, monkeypatch)
    result = runner.invoke(app, ["config", "show", "--resolve", "claude-opus-4-6", "--thinking"])
    assert result.exit_code == 0, result.output
    assert "request: thinking" in result.output
    assert (
        "routing rule #3" in result.output and "when = 'thinking': thinking is on" in result.output
    )
    assert "claude-opus-4-6 → openai:gpt-5.6-terra" in result.output
    result = runner.invoke(
        app, ["config", "show", "--resolve", "gpt-4o", "--tokens", "200000", "--json"]
    )
    data = json.loads(result.output)
    assert (data["provider"], data["upstream_model"], data["rule"]) == (
        "groq",
        "kimi-k2",
        "long-context",
    )
    result = runner.invoke(app, ["config", "show", "--resolve", "gpt-4o"])
    assert "no routing rule matched" in result.output and "→ openai:gpt-4o" in result.output


def test_config_show_resolve_reads_a_request_file(
    place: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 100,
        "system": "Summarize the conversation in a title.",
        "messages": [{"role": "user", "content": "hello"}],
    }
    path = place.write("req.json", json.dumps(body))
    result = _cli(place, monkeypatch).invoke(
        app, ["config", "show", "--resolve", "claude-haiku-4-5", "--request", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert "request: background" in result.output
    assert "→ groq:llama-3.1-8b-instant" in result.output


# -- the wrap summary -----------------------------------------------------------------------------


def test_the_summary_says_which_rule_served_how_many() -> None:
    recorder = UsageRecorder()
    usage = {"input_tokens": 10, "output_tokens": 2}
    for rule in ("background", "background", None, "thinking"):
        recorder.record(Request("groq", "m", True, usage, 0.1, 0.2, rule=rule))
    data = summary_dict(recorder.snapshot())
    assert data["rules"] == {"background": 2, "thinking": 1}
    assert "  routing rules served: background 2, thinking 1" in summary_text(data).splitlines()
    plain = UsageRecorder()
    plain.record(Request("groq", "m", True, usage, 0.1, 0.2))
    assert "routing rules" not in summary_text(summary_dict(plain.snapshot()))


def test_config_show_resolve_reads_a_chat_completions_request_file(
    place: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {
        "model": "claude-opus-4-6",
        "max_tokens": 100,
        "reasoning_effort": "high",
        "messages": [{"role": "user", "content": "hello"}],
    }
    path = place.write("chat.json", json.dumps(body))
    result = _cli(place, monkeypatch).invoke(
        app, ["config", "show", "--resolve", "claude-opus-4-6", "--request", str(path), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rule"] == "thinking[*opus*]"


def test_config_show_lists_the_rules(place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _cli(place, monkeypatch).invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "Routing rules, the first match wins" in result.output
    assert "#4 long-context" in result.output and "above 1,000 input tokens" in result.output
