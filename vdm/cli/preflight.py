"""Checks made before vdm commits to running: `vdm wrap`'s pre-flight, and a busy port.

`vdm wrap`'s pre-flight, before the child starts (docs/wrap.md, "Pre-flight"):

1. The models the child will ask for: `--model X` / `--model=X` (`-m X` too when the command
   is Claude Code) after the command, else what Claude Code uses by default (`ANTHROPIC_MODEL`,
   the `model` of its settings files, else its default main model and its background model),
   with Claude Code's own aliases (`opus`, `sonnet[1m]`, `opusplan`, …) spelled out as the
   names it sends.
2. Each resolves as the gateway would resolve it (an unknown `provider:` prefix, an alias
   cycle… stop here).
3. The providers they reach are asked for their models list with each of their keys, all at
   once (`vdm health upstream`'s probe, vdm/cli/probes.py), the whole check bounded by
   CHECK_SECONDS. A refused key or an unreachable base URL stops `vdm wrap` (exit 1, nothing
   started) with the fix named; a timeout, a 429 or a 5xx is only a warning (the provider may
   be busy). Successes are remembered for CACHE_SECONDS in a small file under the user's
   cache directory, keyed by a hash of provider, format, base URL and key (never the key).

Imported only by `vdm wrap` and `vdm server start` when they need it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from vdm.config.settings import ProviderConfig, Settings

if TYPE_CHECKING:
    from vdm.cli.probes import Probe

#: The whole check's bound, in seconds: what has not answered by then is a warning.
CHECK_SECONDS = 2.0
#: One models-list request's own timeout (below CHECK_SECONDS, so that a slow provider is
#: reported as slow rather than simply missing).
PROBE_SECONDS = 1.5
#: How long a provider that accepted a key is not asked again.
CACHE_SECONDS = 60.0
CACHE_FILE = "preflight.json"

#: Claude Code's model names by tier, as Claude Code 2.1.330 (the Makefile's pin) sends them
#: for `--model opus` etc.; `ANTHROPIC_DEFAULT_{TIER}_MODEL` overrides each.
CLAUDE_CODE_MODELS = {
    "opus": "claude-opus-5-5",
    "sonnet": "claude-sonnet-5-5",
    "haiku": "claude-haiku-5-5",
    "fable": "claude-fable-5-2",
}
#: The tier of Claude Code's main model when nothing chooses one (an API-key or token
#: session), and of its background model (titles, summaries).
MAIN_TIER = "opus"
BACKGROUND_TIER = "haiku"

#: How the fix is named at the end of every refusal.
SKIP_HINT = "`vdm wrap --no-check` (or VDM_NO_CHECK=1) starts without this check"

#: Providers' words for a key that is not valid, on a status other than 401/403 (Gemini:
#: 400 "API key not valid. Please pass a valid API key.").
_BAD_KEY = re.compile(r"api.?key not valid|invalid.?api.?key|api_key_invalid", re.IGNORECASE)
#: A key that is valid but may not list models (OpenAI's restricted keys: 401 "You have
#: insufficient permissions for this operation. Missing scopes: api.model.read. …").
_SCOPE = re.compile(r"missing scopes?", re.IGNORECASE)
_STATUS = re.compile(r"\b(\d{3})\b")
#: vdm.upstream.client's prefixes to an upstream's message and to a transport error (what
#: they say is said separately).
_RETURNED = re.compile(r"^(\S+ returned HTTP \d{3}|cannot reach \S+ at \S+): ")


# -- the models the child will ask for ------------------------------------------------------


def command_model(command: Sequence[str]) -> str | None:
    """The `--model` given to `command` (the last one, as a parser would take it)."""
    if not command:
        return None
    claude = Path(command[0]).name.lower().startswith("claude")
    found: str | None = None
    args = list(command[1:])
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            break
        if arg == "--model" or (claude and arg == "-m"):
            if index + 1 < len(args):
                found = args[index + 1]
            index += 2
            continue
        if arg.startswith("--model="):
            found = arg.partition("=")[2]
        index += 1
    return found


def _tier(tier: str, environ: Mapping[str, str]) -> str:
    return environ.get(f"ANTHROPIC_DEFAULT_{tier.upper()}_MODEL") or CLAUDE_CODE_MODELS[tier]


def claude_code_names(name: str, environ: Mapping[str, str]) -> list[str]:
    """`name` as Claude Code sends it: its aliases become model names, `[1m]` goes."""
    base = re.sub(r"\[[^\]]*\]$", "", name.strip())
    key = base.lower()
    if key == "default":
        return [_tier(MAIN_TIER, environ)]
    if key == "opusplan":  # opus while planning, sonnet otherwise
        return [_tier("opus", environ), _tier("sonnet", environ)]
    if key in CLAUDE_CODE_MODELS:
        return [_tier(key, environ)]
    return [base]


def _settings_model(environ: Mapping[str, str], cwd: Path) -> str | None:
    """The `model` of Claude Code's settings files: local, then project, then user."""
    config_dir = environ.get("CLAUDE_CONFIG_DIR") or (
        str(Path(environ["HOME"]) / ".claude") if environ.get("HOME") else ""
    )
    files = [cwd / ".claude" / "settings.local.json", cwd / ".claude" / "settings.json"]
    if config_dir:
        files.append(Path(config_dir) / "settings.json")
    for path in files:
        try:
            model = json.loads(path.read_text(encoding="utf-8")).get("model")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(model, str) and model.strip():
            return model
    return None


def wanted_models(command: Sequence[str], environ: Mapping[str, str], cwd: Path) -> list[str]:
    """The model names the child will send: the command line's `--model`, else Claude
    Code's default main model and its background model."""
    given = command_model(command)
    if given is not None:
        names = claude_code_names(given, environ)
    else:
        main = environ.get("ANTHROPIC_MODEL") or _settings_model(environ, cwd) or "default"
        background = environ.get("ANTHROPIC_SMALL_FAST_MODEL") or BACKGROUND_TIER
        names = [*claude_code_names(main, environ), *claude_code_names(background, environ)]
    return list(dict.fromkeys(n for n in names if n))


# -- the cache ------------------------------------------------------------------------------


def cache_path(environ: Mapping[str, str]) -> Path | None:
    """`$XDG_CACHE_HOME/vandamme-proxy/preflight.json`, else under `~/.cache` (macOS:
    `~/Library/Caches`); None without a home."""
    base = environ.get("XDG_CACHE_HOME")
    if not base:
        home = environ.get("HOME")
        if not home:
            return None
        sub = ("Library", "Caches") if sys.platform == "darwin" else (".cache",)
        base = str(Path(home).joinpath(*sub))
    return Path(base) / "vandamme-proxy" / CACHE_FILE


def cache_key(provider: ProviderConfig, key: str) -> str:
    """A hash of what makes an answer valid: never the key itself."""
    parts = [provider.name, provider.api_format, provider.auth, provider.base_url, key]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


class Cache:
    """Successful checks and when they happened (a JSON object hash → Unix time)."""

    def __init__(self, path: Path | None, now: float | None = None) -> None:
        self.path = path
        self.now = time.time() if now is None else now
        self.entries: dict[str, float] = {}
        self.changed = False
        if path is None:
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(data, dict):
            self.entries = {
                k: float(v)
                for k, v in data.items()
                if isinstance(v, int | float) and 0 <= self.now - v < CACHE_SECONDS
            }

    def fresh(self, key: str) -> bool:
        return key in self.entries

    def add(self, key: str) -> None:
        self.entries[key] = self.now
        self.changed = True

    def save(self) -> None:
        """Written whole, atomically, readable by the user only; a failure is ignored (the
        next run checks again)."""
        if self.path is None or not self.changed:
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(self.entries, out)
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)


# -- the check ------------------------------------------------------------------------------

Verdict = Literal["ok", "rejected", "unreachable", "busy", "odd"]


@dataclass(slots=True)
class Outcome:
    """What the pre-flight found: refusals stop `vdm wrap`, warnings do not."""

    stops: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Models-list requests actually sent (0 when everything was cached).
    probed: int = 0
    seconds: float = 0.0


def _status(probe: Probe) -> int | None:
    found = _STATUS.search(probe.result)
    return int(found.group(1)) if found else None


def verdict(probe: Probe | None) -> Verdict:
    """What one models-list answer says about the provider and the key."""
    if probe is None or probe.result == "timed out":
        return "busy"
    if probe.outcome == "ok":
        return "ok"
    if probe.result == "unreachable":
        return "unreachable"
    status = _status(probe)
    if status in (401, 403):
        return "odd" if _SCOPE.search(probe.detail) else "rejected"
    if status == 400 and _BAD_KEY.search(probe.detail):
        return "rejected"
    if status in (404, 405):
        # The server answered and did not refuse the key; it just lists no models there
        # (some OpenAI-compatible servers do not serve /models).
        return "ok"
    if status is not None and (status == 429 or status >= 500):
        return "busy"
    return "odd"


def _variable(provider: ProviderConfig, settings: Settings, suffix: str) -> tuple[str, bool]:
    """`OPENAI_API_KEY (set in ./.env)`: the variable and where you set it; and whether you
    did (False: a preset's value, or nothing)."""
    var = f"{provider.name.upper().replace('-', '_')}_{suffix}"
    value = settings.values.get(var)
    if value is None or value.is_default:
        return var, False
    from vdm.cli.common import short_paths

    if value.source == "env":
        return f"{var} (set in your environment)", True
    return f"{var} (set in {short_paths(value.source, os.environ, Path.cwd())})", True


def _said(probe: Probe) -> str:
    """`HTTP 401: Incorrect API key provided…`, `unreachable: …`: the answer, once."""
    detail = _RETURNED.sub("", " ".join(probe.detail.split()), count=1)
    if len(detail) > 240:
        detail = detail[:239] + "…"
    status = _status(probe)
    if status is None and probe.result == "unreachable" and detail:
        return detail
    head = f"HTTP {status}" if status is not None else probe.result
    return f"{head}: {detail}" if detail else head


def _judge(
    provider: ProviderConfig,
    keys: Sequence[str],
    found: Sequence[Probe | None],
    settings: Settings,
    outcome: Outcome,
) -> None:
    """One provider's keys' answers → refusals or warnings in `outcome`."""
    from vdm.config.secrets import mask, safe_url

    verdicts = [verdict(p) for p in found]
    where = f"{provider.name} ({safe_url(provider.base_url)})"
    if "ok" in verdicts:
        for key, probe, seen in zip(keys, found, verdicts, strict=True):
            if seen == "rejected" and probe is not None:
                outcome.warnings.append(
                    f"{provider.name} refused key {mask(key)} ({_said(probe)}); vdm uses its "
                    f"other keys. Check {_variable(provider, settings, 'API_KEY')[0]}"
                )
        return
    first = next((p for p in found if p is not None), None)
    if all(v == "rejected" for v in verdicts) and first is not None:
        what = "its key" if len(keys) == 1 else f"all {len(keys)} of its keys"
        outcome.stops.append(
            f"{where} refused {what} ({_said(first)}): check "
            f"{_variable(provider, settings, 'API_KEY')[0]}; `vdm health upstream` checks "
            "every provider"
        )
    elif all(v == "unreachable" for v in verdicts) and first is not None:
        url_var, yours = _variable(provider, settings, "BASE_URL")
        fix = f"check {url_var}" if yours else "check your network connection"
        outcome.stops.append(
            f"cannot reach {provider.name} at {safe_url(provider.base_url)} ({_said(first)}): "
            f"{fix} and that the server is up; "
            "`vdm health upstream` checks every provider"
        )
    elif first is None or all(v == "busy" for v in verdicts):
        said = f"may be busy ({_said(first)})" if first else "did not answer in time"
        outcome.warnings.append(
            f"{where} {said}; starting anyway (`vdm health upstream` checks it again)"
        )
    else:
        odd = next(p for p, v in zip(found, verdicts, strict=True) if v != "busy" and p)
        outcome.warnings.append(
            f"{where} answered its models list with {_said(odd)}; "
            "starting anyway (`vdm health upstream` checks it again)"
        )


def _probe_all(jobs: Sequence[tuple[ProviderConfig, str]], budget: float) -> list[Probe | None]:
    """Each `(provider, key)` probed at once in a thread of its own, so that the bound holds
    even for a name lookup that hangs (an event loop would wait for it at close); what has
    not answered within `budget` seconds is None."""
    results: list[Probe | None] = [None] * len(jobs)
    failure: list[BaseException] = []

    def run() -> None:
        import anyio

        from vdm.cli.probes import probe_upstreams

        async def one(index: int) -> None:
            provider, key = jobs[index]
            single = replace(provider, api_keys=(key,) if key else ())
            results[index] = (await probe_upstreams([single], PROBE_SECONDS))[0]

        async def main() -> None:
            with anyio.move_on_after(budget):
                async with anyio.create_task_group() as tg:
                    for index in range(len(jobs)):
                        tg.start_soon(one, index)

        try:
            anyio.run(main, backend="asyncio")
        except Exception as exc:  # reported as a warning below, never a traceback
            failure.append(exc)

    thread = threading.Thread(target=run, name="vdm-preflight", daemon=True)
    thread.start()
    thread.join(budget + 0.25)
    if failure:
        raise failure[0]
    return list(results)


def check(
    settings: Settings,
    names: Sequence[str],
    *,
    cache: Cache | None = None,
    budget: float = CHECK_SECONDS,
) -> Outcome:
    """Resolve `names` and probe the providers they reach (see the module docstring)."""
    from vdm.config.secrets import redact
    from vdm.protocol.errors import VdmError
    from vdm.routing.resolve import resolve

    started = time.perf_counter()
    outcome = Outcome()
    providers: dict[str, ProviderConfig] = {}
    for name in names:
        try:
            route = resolve(name, settings)
        except VdmError as exc:
            outcome.stops.append(
                f"{exc.message} (`vdm config show --resolve {name}` shows how it resolves)"
            )
            continue
        if not route.provider.passthrough:  # it uses the client's key: nothing of ours to test
            providers.setdefault(route.provider.name, route.provider)
    cache = cache or Cache(None)
    jobs: list[tuple[ProviderConfig, str]] = []
    for provider in providers.values():
        for key in provider.api_keys or ("",):  # a provider without keys (Ollama) once
            if not cache.fresh(cache_key(provider, key)):
                jobs.append((provider, key))
    found: dict[tuple[str, str], Probe | None] = {}
    if jobs:
        try:
            answers = _probe_all(jobs, budget)
        except Exception as exc:
            outcome.warnings.append(f"the pre-flight check failed ({type(exc).__name__}: {exc})")
            answers = [None] * len(jobs)
        outcome.probed = len(jobs)
        for (provider, key), probe in zip(jobs, answers, strict=True):
            found[(provider.name, key)] = probe
            if verdict(probe) == "ok":
                cache.add(cache_key(provider, key))
        cache.save()
    for provider in providers.values():
        keys = [k for k in provider.api_keys or ("",) if (provider.name, k) in found]
        if keys:
            _judge(provider, keys, [found[(provider.name, k)] for k in keys], settings, outcome)
    # Upstreams sometimes echo the key they refused.
    outcome.stops = [redact(s, settings.secrets) for s in outcome.stops]
    outcome.warnings = [redact(w, settings.secrets) for w in outcome.warnings]
    outcome.seconds = time.perf_counter() - started
    return outcome


# -- a port that cannot be bound ------------------------------------------------------------


def port_problem(host: str, port: int, exc: OSError, proxy_api_key: str | None = None) -> str:
    """Why `host:port` cannot be bound, and what to do: for a port in use, whether a vdm
    answers there (its GET /health)."""
    said = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    if exc.errno == errno.EADDRINUSE:
        version = _vdm_version_at(host, port, proxy_api_key)
        if version is not None:
            url = _url(host, port)
            return (
                f"{said}: a vdm{version} is already running there (`vdm health server --url "
                f"{url}`); use it, stop it, or choose another port with --port"
            )
        return f"{said}: another program uses this port; choose another with --port (or PORT)"
    if exc.errno == errno.EACCES and 0 < port < 1024:
        return f"{said}: ports below 1024 need privileges; choose another with --port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{said}: this machine has no such address; check --host (or HOST)"
    return said


def _url(host: str, port: int) -> str:
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _vdm_version_at(host: str, port: int, proxy_api_key: str | None) -> str | None:
    """` 3.0.0` (or ``) when what listens on host:port answers GET /health as vdm does,
    else None."""
    import anyio

    from vdm.cli.probes import ProbeError, check_server

    try:
        health = anyio.run(
            lambda: check_server(_url(host, port), proxy_api_key, 1.0), backend="asyncio"
        )
    except (ProbeError, OSError):
        return None
    if "providers" not in health.body and "version" not in health.body:
        return None
    version = health.body.get("version")
    return f" {version}" if isinstance(version, str) else ""
