"""A wrapped client's environment behind an outbound proxy (pure)."""

from __future__ import annotations

#: The proxy variables clients honour (Node's and Rust's HTTP stacks read either case).
_PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")
#: What the child must reach directly: vdm's session proxy is on loopback.
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def bypass_proxy(env: dict[str, str]) -> None:
    """With an outbound proxy set (a corporate network), loopback added to the child's
    NO_PROXY, in both spellings: Claude Code and Codex honour HTTPS_PROXY, and would send
    their calls to vdm's loopback URL through the proxy, which cannot reach it."""
    if not any(env.get(name) or env.get(name.lower()) for name in _PROXY_VARS):
        return
    for name in ("NO_PROXY", "no_proxy"):
        present = [p.strip() for p in env.get(name, "").split(",") if p.strip()]
        missing = [host for host in _LOOPBACK if host not in present]
        if missing:
            env[name] = ",".join([*present, *missing])
