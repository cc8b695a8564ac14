"""SigV4 for a provider that signs its requests (`{P}_AUTH=sigv4`): where its credentials come
from, and the signature added to each request the upstream client is about to send.

The signature covers the exact request httpx sends: its method, URL (`%2F` of an
inference-profile ARN included), headers (`multi_items()`: duplicates kept) and body, so the
client calls `sign` on the final `httpx.Request` of every attempt. A retry is signed again:
`X-Amz-Date` moves on, and temporary credentials may have been refreshed in between.

Credentials (vdm/config/aws.py says which applies):

- keys given as settings (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
  `AWS_SESSION_TOKEN`, from any layer): used as they are, no dependency;
- otherwise botocore (`pip install 'vandamme-proxy[aws]'`): `Session(profile=...)
  .get_credentials()` resolves the chain (profile, SSO, assume-role, container and instance
  roles) once, in a thread; `get_frozen_credentials()` runs per request in a thread too, since
  it may refresh them (blocking STS, SSO or IMDS calls), and gives a key/secret/token triple
  that belongs together (botocore's own signer does the same, botocore/signers.py).

Nothing here logs or quotes a credential; an error names the provider and the fix.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx

from vdm.config.aws import EXTRA, AwsAuth
from vdm.protocol.errors import VdmError
from vdm.upstream.sigv4 import sign

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Credentials:
    """One consistent key/secret/token triple."""

    access_key: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:  # never the secret, even in a traceback
        return f"Credentials(access_key={self.access_key!r})"


class RequestSigner:
    """Signs the requests of one provider (`sign`, awaited by the upstream client)."""

    def __init__(self, provider: str, aws: AwsAuth) -> None:
        self.provider = provider
        self.aws = aws
        self._static = (
            Credentials(aws.access_key or "", aws.secret_key or "", aws.session_token)
            if aws.static
            else None
        )
        self._chain: Any = None  # botocore's Credentials, resolved on first use
        self._lock = anyio.Lock()

    async def sign(self, request: httpx.Request) -> None:
        """Add `Authorization`, `X-Amz-Date` (and `X-Amz-Security-Token`) to `request`."""
        credentials = self._static or await self._from_chain()
        added = sign(
            request.method,
            str(request.url),
            request.headers.multi_items(),
            request.content,
            access_key=credentials.access_key,
            secret_key=credentials.secret_key,
            session_token=credentials.token,
            region=self.aws.region,
            service=self.aws.service,
            now=datetime.now(UTC),
        )
        request.headers.update(added)

    async def _from_chain(self) -> Credentials:
        if self._chain is None:
            async with self._lock:
                if self._chain is None:
                    self._chain = await anyio.to_thread.run_sync(self._resolve)
        frozen = await anyio.to_thread.run_sync(self._freeze)
        return frozen

    def _resolve(self) -> Any:
        """botocore's credentials for the provider (in a thread: the chain may read files
        and call STS, SSO or the instance metadata service)."""
        try:
            # No stubs ship with botocore (botocore-stubs is another package).
            from botocore.session import Session  # type: ignore[import-not-found, import-untyped, unused-ignore]
        except ImportError:
            raise self._error(
                "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and "
                f"AWS_SESSION_TOKEN for temporary ones), or `{EXTRA}` for profiles, SSO and "
                "instance roles"
            ) from None
        try:
            found = Session(profile=self.aws.profile).get_credentials()
        except Exception as exc:  # botocore's ProfileNotFound, SSO token errors, ...
            raise self._error(f"AWS credentials could not be loaded: {_reason(exc)}") from None
        if found is None:
            where = f"profile {self.aws.profile!r}" if self.aws.profile else "botocore's chain"
            raise self._error(
                f"no AWS credentials found ({where}): set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or log in (`aws sso login`)"
            )
        log.debug("%s: AWS credentials from %s", self.provider, getattr(found, "method", "?"))
        return found

    def _freeze(self) -> Credentials:
        try:
            frozen = self._chain.get_frozen_credentials()
        except Exception as exc:  # a refresh that failed: an expired SSO session, STS down
            raise self._error(f"AWS credentials could not be refreshed: {_reason(exc)}") from None
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token)

    def _error(self, text: str) -> VdmError:
        # vdm's configuration, not the client's request: another provider may answer.
        return VdmError(
            500, f"provider {self.provider!r} signs with SigV4 but {text}", unavailable=True
        )


def _reason(exc: Exception) -> str:
    """An exception's type and message (botocore's never hold a secret key)."""
    return f"{type(exc).__name__}: {exc}"


def signer_for(provider: str, aws: AwsAuth | None) -> RequestSigner | None:
    """The signer of a provider that signs with SigV4, else None."""
    return None if aws is None else RequestSigner(provider, aws)
