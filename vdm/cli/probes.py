"""The probes behind `vdm health` and `vdm test`: real requests, their outcome, a plain table.

- `check_server`: GET /health of a running vdm.
- `probe_upstreams`: an authenticated GET of each provider's models list, once per key, through
  `UpstreamClient`, so the base URL, auth scheme and custom headers are the gateway's own.
- `test_connections`, `test_aliases`: this directory's configuration served in-process on a
  loopback port the OS picks, and one-token Anthropic requests sent to it, so each request
  takes the gateway's whole path (routing, translation, key pool, upstream and back).

Imported only inside command bodies: it loads httpx and anyio, and the server on demand.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal
from urllib.parse import urlsplit

import anyio
import httpx

from vdm.cli.common import bind_socket
from vdm.config.secrets import mask, redact, safe_url
from vdm.config.settings import ProviderConfig, Settings
from vdm.protocol.anthropic import ANTHROPIC_VERSION
from vdm.protocol.errors import VdmError

Outcome = Literal["ok", "failed", "skipped"]

#: The text of every one-token request.
PING = "ping"
SKIPPED_PASSTHRU = "!PASSTHRU: uses each client's own key; vdm has none to test with"
NO_MODEL = "no model to test: pass --model"
NO_SERVER = "no vdm answering at {url}: start one with `vdm server start`"
#: Statuses that mean the upstream refused the key.
_AUTH_STATUSES = frozenset({401, 403})


@dataclass(frozen=True, slots=True)
class Probe:
    """One row of a report: what was probed, how it went and how long it took."""

    name: str
    target: str
    outcome: Outcome
    #: Short: `ok`, `auth failed (401)`, `unreachable`, `timed out`, `error 500`, `skipped`.
    result: str
    latency_ms: float | None = None
    #: The upstream's own message, the reason for a skip, or what went well.
    detail: str = ""


class ProbeError(Exception):
    """The probe could not run at all (no vdm answering, …): the message names the fix."""


# -- plain text -----------------------------------------------------------------------------


def table(header: Sequence[str], rows: Iterable[Sequence[str]], right: Iterable[int] = ()) -> str:
    """Columns aligned with two spaces; `right` holds the indexes of right-aligned columns."""
    lines = [list(header), *(list(r) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    aligned = set(right)
    return "\n".join(
        "  ".join(
            cell.rjust(width) if i in aligned else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    )


def latency(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:.0f} ms"


def summary(probes: Sequence[Probe]) -> str:
    """`2 ok, 1 failed, 1 skipped` (the counts that are not zero)."""
    counts = {kind: sum(p.outcome == kind for p in probes) for kind in ("ok", "failed", "skipped")}
    return ", ".join(f"{n} {kind}" for kind, n in counts.items() if n) or "nothing to probe"


def exit_code(probes: Sequence[Probe]) -> int:
    """1 if anything failed or nothing at all was probed, else 0."""
    failed = any(p.outcome == "failed" for p in probes)
    return 1 if failed or not any(p.outcome == "ok" for p in probes) else 0


def _result(status: int, message: str) -> str:
    """`auth failed (401)`, `unreachable`, `timed out` or `error N` for a failed request."""
    if status in _AUTH_STATUSES:
        return f"auth failed ({status})"
    if status == 502 and message.startswith("cannot reach "):  # vdm.upstream.client's wording
        return "unreachable"
    if status == 504:
        return "timed out"
    return f"error {status}"


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


async def _gather(jobs: Sequence[Callable[[], Awaitable[Probe]]], concurrency: int) -> list[Probe]:
    """Run `jobs` concurrently, at most `concurrency` at a time; results in the jobs' order."""
    results: list[Probe | None] = [None] * len(jobs)
    limiter = anyio.CapacityLimiter(max(1, concurrency))

    async def run(index: int) -> None:
        async with limiter:
            results[index] = await jobs[index]()

    async with anyio.create_task_group() as tg:
        for index in range(len(jobs)):
            tg.start_soon(run, index)
    return [r for r in results if r is not None]


# -- vdm health server ----------------------------------------------------------------------


def server_url(settings: Settings, url: str | None) -> str:
    """`url` (scheme optional), else `http://HOST:PORT` of the settings, where a wildcard
    address (0.0.0.0, ::) becomes the loopback address that reaches it."""
    if url:
        url = url.strip().rstrip("/")
        return url if "://" in url else f"http://{url}"
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.host, settings.host)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}"


@dataclass(frozen=True, slots=True)
class ServerHealth:
    url: str
    status: str
    body: dict[str, Any]
    latency_ms: float

    @property
    def healthy(self) -> bool:
        return self.status == "ok"


async def check_server(url: str, proxy_api_key: str | None, timeout: float) -> ServerHealth:
    """GET `url`/health; raises ProbeError when nothing answers or the answer is not vdm's."""
    headers = {"x-api-key": proxy_api_key} if proxy_api_key else {}
    host = urlsplit(url).hostname or ""
    # A loopback vdm is never reached through a proxy from the environment.
    async with httpx.AsyncClient(timeout=timeout, trust_env=not _loopback(host)) as client:
        started = time.perf_counter()
        try:
            with anyio.fail_after(timeout + 1.0):
                response = await client.get(f"{url}/health", headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise ProbeError(NO_SERVER.format(url=url)) from None
        except (httpx.TimeoutException, TimeoutError):
            raise ProbeError(f"vdm at {url} did not answer within {timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise ProbeError(f"cannot check {url}: {type(exc).__name__}: {exc}") from None
        elapsed = _ms(started)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("status"), str):
        raise ProbeError(
            f"something answered at {url} (HTTP {response.status_code}), but not vdm's /health: "
            "check --url, or start vdm with `vdm server start`"
        )
    return ServerHealth(url, body["status"], body, elapsed)


def server_report(health: ServerHealth) -> str:
    """The status line, the providers the server has and any problem it reported."""
    body = health.body
    version = body.get("version")
    name = f"vdm {version}" if isinstance(version, str) else "vdm"
    lines = [f"{name} at {health.url}: {health.status} ({latency(health.latency_ms)})"]
    if isinstance(body.get("message"), str):
        lines.append(body["message"])
    if body.get("default_provider"):
        lines.append(f"default provider: {body['default_provider']}")
    providers = body.get("providers")
    if isinstance(providers, dict) and providers:
        rows = []
        for provider, info in providers.items():
            info = info if isinstance(info, dict) else {}
            keys = info.get("keys")
            rows.append(
                [
                    str(provider),
                    str(info.get("api_format", "")),
                    str(info.get("base_url", "")),
                    ", ".join(map(str, keys)) if isinstance(keys, list) else "",
                ]
            )
        lines += ["", table(["PROVIDER", "FORMAT", "BASE URL", "KEYS"], rows)]
    problems = body.get("problems")
    if isinstance(problems, list) and problems:
        lines += ["", *(f"problem: {p}" for p in problems)]
    return "\n".join(lines)


# -- vdm health upstream --------------------------------------------------------------------


class _Seen:
    """What the last request got: a status, or the transport error."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.error: Exception | None = None


class _Observed(httpx.AsyncBaseTransport):
    """A transport of the probe's client (vdm's pool, or a proxy route from the environment,
    as the server's own calls go), telling `seen` what its request got."""

    def __init__(self, inner: httpx.AsyncBaseTransport, seen: _Seen) -> None:
        self.inner = inner
        self.seen = seen

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self.inner.handle_async_request(request)
        except Exception as exc:
            self.seen.error = exc
            raise
        self.seen.status = response.status_code
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _probe_key(provider: ProviderConfig, key: str, timeout: float) -> Probe:
    """One authenticated GET of the models list with `key` (or none), without retries."""
    from vdm.upstream.backends import client_for, models_path

    config = dataclasses.replace(
        provider,
        api_keys=(key,) if key else (),
        timeouts=provider.timeouts.capped(timeout),
        max_retries=0,
    )
    seen = _Seen()
    client = client_for(config, wrap=lambda inner: _Observed(inner, seen))
    name, target = provider.name, safe_url(provider.base_url)
    started = time.perf_counter()
    try:
        with anyio.fail_after(timeout + 1.0):
            answer = await client.get_json(models_path(config))
    except VdmError as exc:
        elapsed = _ms(started) if seen.status is not None else None
        if seen.status is not None:
            result = _result(seen.status, "")
        elif isinstance(seen.error, httpx.ConnectError | httpx.ConnectTimeout):
            result = "unreachable"
        else:
            result = _result(exc.status, exc.message)
        return Probe(name, target, "failed", result, elapsed, exc.message)
    except TimeoutError:
        return Probe(name, target, "failed", "timed out", None, f"no answer in {timeout:g} s")
    finally:
        await client.aclose()
    elapsed = _ms(started)
    # OpenAI and Anthropic list `data`, Gemini's native API lists `models`.
    items = (answer.get("data") or answer.get("models")) if isinstance(answer, dict) else answer
    detail = f"{len(items)} models listed" if isinstance(items, list) else "answered"
    return Probe(name, target, "ok", "ok", elapsed, detail)


async def _probe_provider(provider: ProviderConfig, timeout: float) -> Probe:
    """Every key of `provider`, concurrently; the row shows the first failure, if any."""
    if provider.passthrough:
        target = safe_url(provider.base_url)
        return Probe(provider.name, target, "skipped", "skipped", None, SKIPPED_PASSTHRU)
    keys = provider.api_keys or ("",)  # a provider without keys (Ollama) is probed once
    done = await _gather([partial(_probe_key, provider, k, timeout) for k in keys], len(keys))
    if len(done) == 1:
        return done[0]
    failed = [(keys[i], p) for i, p in enumerate(done) if p.outcome == "failed"]
    if not failed:
        slowest = max(p.latency_ms or 0.0 for p in done)
        return dataclasses.replace(done[0], latency_ms=slowest, detail=f"{len(keys)} keys ok")
    first = failed[0][1]
    detail = "; ".join(f"key {mask(k)}: {p.result}: {p.detail}" for k, p in failed)
    ok = len(keys) - len(failed)
    return dataclasses.replace(first, detail=f"{detail} ({ok} of {len(keys)} keys ok)")


async def probe_upstreams(
    providers: Sequence[ProviderConfig], timeout: float, concurrency: int = 16
) -> list[Probe]:
    """A row per provider: reachable, key accepted, how fast; all providers at once."""
    jobs = [partial(_probe_provider, p, timeout) for p in providers]
    return await _gather(jobs, concurrency)


def upstream_report(probes: Sequence[Probe], providers: Sequence[ProviderConfig]) -> str:
    formats = {p.name: p.api_format for p in providers}
    rows = [
        [p.name, formats.get(p.name, ""), p.target, p.result, latency(p.latency_ms), p.detail]
        for p in probes
    ]
    header = ["PROVIDER", "FORMAT", "BASE URL", "RESULT", "LATENCY", "DETAIL"]
    return table(header, rows, right=[4]) + f"\n\n{summary(probes)}"


# -- vdm test connection / vdm test models --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Gateway:
    """vdm served in this process: an httpx client that reaches it with its session secret."""

    url: str
    client: httpx.AsyncClient
    timeout: float


@asynccontextmanager
async def in_process_gateway(settings: Settings, timeout: float) -> AsyncIterator[Gateway]:
    """Serve `settings` on 127.0.0.1 at a port the OS picks until the block ends. Like
    `vdm wrap`'s session proxy, it only accepts requests carrying a random session secret."""
    from vdm.server.auth import SESSION_HEADER
    from vdm.server.serve import serving

    # Bound here and handed to Hypercorn: listening before the first request, and no other
    # process can take the port in between.
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    secret = secrets.token_urlsafe(32)
    # Each upstream call gets at most `timeout`, so a hanging provider shows as a timeout.
    providers = {
        name: dataclasses.replace(p, timeouts=p.timeouts.capped(timeout))
        for name, p in settings.providers.items()
    }
    served = dataclasses.replace(
        settings,
        providers=providers,
        host="127.0.0.1",
        port=port,
        session_secret=secret,
        proxy_api_key=None,  # the session secret guards it; no client key is sent
    )
    url = f"http://127.0.0.1:{port}"
    async with (
        serving(served, sock, graceful_timeout=1.0),
        httpx.AsyncClient(
            base_url=url,
            headers={SESSION_HEADER.decode(): secret, "anthropic-version": ANTHROPIC_VERSION},
            # Retries inside the gateway may take a little longer than one attempt.
            timeout=timeout * 2 + 5.0,
            trust_env=False,
        ) as client,
    ):
        yield Gateway(url, client, timeout)


async def ping(gateway: Gateway, name: str, model: str) -> Probe:
    """A one-token request for `model` (`provider:model` or an alias) through the gateway."""
    body = {"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": PING}]}
    limit = gateway.timeout * 2 + 5.0
    started = time.perf_counter()
    try:
        with anyio.fail_after(limit):
            response = await gateway.client.post("/v1/messages", json=body)
    except (httpx.TimeoutException, TimeoutError):
        return Probe(name, model, "failed", "timed out", None, f"no answer in {limit:g} s")
    except httpx.HTTPError as exc:
        return Probe(name, model, "failed", "error", None, f"{type(exc).__name__}: {exc}")
    elapsed = _ms(started)
    if response.status_code == 200:
        return Probe(name, model, "ok", "ok", elapsed, _usage(response.content))
    message = _error_message(response.content) or f"HTTP {response.status_code}"
    result = _result(response.status_code, message)
    # The time to learn that nothing answered says nothing about the provider.
    shown = None if result in ("unreachable", "timed out") else elapsed
    return Probe(name, model, "failed", result, shown, message)


def _usage(content: bytes) -> str:
    try:
        usage = json.loads(content).get("usage") or {}
        return f"{usage['input_tokens']} in, {usage['output_tokens']} out"
    except (ValueError, AttributeError, KeyError, TypeError):
        return ""


def _error_message(content: bytes) -> str:
    """The message of an Anthropic error body (what vdm answers), else the text itself."""
    try:
        error = json.loads(content).get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    except (ValueError, AttributeError):
        pass
    return content.decode("utf-8", "replace").strip()[:300]


#: The name Claude Code sends for its small, fast model: what a connection test asks for.
CLAUDE_CODE_HAIKU = "claude-haiku-4-5"


@dataclass(frozen=True, slots=True)
class Choice:
    """The model a connection test sends to a provider, and why."""

    model: str
    #: Claude Code's haiku name, sent unchanged to the default provider (nothing maps it).
    unmapped: bool = False


def connection_model(
    settings: Settings, provider: ProviderConfig, model: str | None
) -> Choice | None:
    """The model a connection test asks `provider` for, as the gateway resolves it:

    1. the default provider: where Claude Code's haiku name goes, when an alias or fallback
       maps it to one of its models;
    2. what its `haiku` alias (yours, else the packaged fallback) resolves to on it;
    3. `model` (--model);
    4. the default provider: Claude Code's haiku name unchanged, as Claude Code sends it.
    """
    from vdm.routing.resolve import resolve

    default = provider.name == settings.default_provider
    wanted = [CLAUDE_CODE_HAIKU] if default else []
    aliases = (*settings.aliases, *settings.fallbacks)
    if any(a.provider == provider.name and a.name == "haiku" for a in aliases):
        wanted.append(f"{provider.name}:haiku")
    for name in wanted:
        try:
            route = resolve(name, settings)
        except VdmError:
            continue
        if route.provider.name == provider.name and route.model != CLAUDE_CODE_HAIKU:
            return Choice(route.model)
    if model:
        return Choice(model)
    return Choice(CLAUDE_CODE_HAIKU, unmapped=True) if default else None


async def test_connections(
    settings: Settings,
    providers: Sequence[ProviderConfig],
    model: str | None,
    timeout: float,
    concurrency: int,
) -> list[Probe]:
    """A one-token request per provider through the in-process gateway; the MODEL column is
    the `provider:model` sent."""
    rows: list[Probe | None] = []
    targets: list[tuple[str, str]] = []
    unmapped: set[str] = set()
    for provider in providers:
        chosen = connection_model(settings, provider, model)
        target = f"{provider.name}:{chosen.model}" if chosen else "-"
        if provider.passthrough:
            rows.append(Probe(provider.name, target, "skipped", "skipped", None, SKIPPED_PASSTHRU))
        elif chosen is None:
            rows.append(Probe(provider.name, "-", "failed", "not tested", None, NO_MODEL))
        else:
            rows.append(None)
            targets.append((provider.name, target))
            if chosen.unmapped:
                unmapped.add(provider.name)
    done = iter(await _ping_all(settings, targets, timeout, concurrency))
    found = [row if row is not None else next(done) for row in rows]
    return [_hint(p) if p.name in unmapped and p.outcome == "failed" else p for p in found]


def _hint(probe: Probe) -> Probe:
    """A failed request with Claude Code's name unchanged: name the mapping that fixes it."""
    variable = f"{probe.name.upper().replace('-', '_')}_ALIAS_HAIKU"
    hint = (
        f"Claude Code's names reach {probe.name!r} unchanged: map them to its models "
        f"({variable}=<model>, likewise _SONNET and _OPUS) or pass --model"
    )
    detail = probe.detail.rstrip()
    if detail:
        hint = f"{detail}{' ' if detail.endswith(('.', '!', '?')) else '; '}{hint}"
    return dataclasses.replace(probe, detail=hint)


async def _ping_all(
    settings: Settings, targets: Sequence[tuple[str, str]], timeout: float, concurrency: int
) -> list[Probe]:
    """`ping` each `(name, model)` through one in-process gateway, `concurrency` at a time."""
    if not targets:
        return []
    async with in_process_gateway(settings, timeout) as gateway:
        jobs = [partial(ping, gateway, name, model) for name, model in targets]
        return await _gather(jobs, concurrency)


def connection_report(probes: Sequence[Probe]) -> str:
    rows = [[p.name, p.target, p.result, latency(p.latency_ms), p.detail] for p in probes]
    header = ["PROVIDER", "MODEL", "RESULT", "LATENCY", "DETAIL"]
    return table(header, rows, right=[3]) + f"\n\n{summary(probes)}"


async def test_aliases(settings: Settings, timeout: float, concurrency: int) -> list[Probe]:
    """Every alias and active fallback, resolved as the gateway does (the `/v1/aliases`
    table), and one one-token request to each distinct `provider:model` they reach."""
    from vdm.server.catalog import alias_entries

    entries = [e for e in alias_entries(settings) if e["active"]]
    targets: list[str] = []
    for entry in entries:
        resolved = entry["resolves_to"]
        provider = settings.providers.get(str(resolved).partition(":")[0])
        if resolved and resolved not in targets and provider and not provider.passthrough:
            targets.append(resolved)
    pings = await _ping_all(settings, [(t, t) for t in targets], timeout, concurrency)
    done = {p.target: p for p in pings}
    probes: list[Probe] = []
    for entry in entries:
        name = f"{entry['name']} ({entry['kind']}, {entry['provider']})"
        resolved = entry["resolves_to"]
        if not resolved:
            error = entry.get("error") or "does not resolve"
            probes.append(Probe(name, str(entry["target"]), "failed", "unresolved", None, error))
        elif resolved in done:
            probes.append(dataclasses.replace(done[resolved], name=name))
        else:
            probes.append(Probe(name, resolved, "skipped", "skipped", None, SKIPPED_PASSTHRU))
    return probes


def alias_report(probes: Sequence[Probe]) -> str:
    rows = [[p.name, p.target, p.result, latency(p.latency_ms), p.detail] for p in probes]
    header = ["ALIAS", "RESOLVES TO", "RESULT", "LATENCY", "DETAIL"]
    return table(header, rows, right=[3]) + f"\n\n{summary(probes)}"


def masked(text: str, settings: Settings) -> str:
    """`text` with every configured secret masked (upstreams sometimes echo keys)."""
    return redact(text, settings.secrets)
