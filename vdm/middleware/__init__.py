"""vdm's middleware: an ordered chain of typed hooks on each request (docs/middleware.md).

The public API for writing one is `BaseMiddleware` (or any class with the `Middleware`
hooks), `Context` and `Answer`; the server binds the chain of a request's route
(`chain_for`) to its context (`Hooks`).
"""

from vdm.middleware.api import Answer, BaseMiddleware, Context, Middleware
from vdm.middleware.chain import Chain, Hooks, Requested
from vdm.middleware.registry import (
    ENTRY_POINT_GROUP,
    MiddlewareError,
    Middlewares,
    chain_for,
    middlewares,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Answer",
    "BaseMiddleware",
    "Chain",
    "Context",
    "Hooks",
    "Middleware",
    "MiddlewareError",
    "Middlewares",
    "Requested",
    "chain_for",
    "middlewares",
]
