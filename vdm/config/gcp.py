"""The Google Cloud side of a provider's configuration: Vertex AI's project, location and
default URL, and how a provider that authenticates with Google's credentials
(`{P}_AUTH=google`) is discovered.

- Project: `{P}_PROJECT`, else `ANTHROPIC_VERTEX_PROJECT_ID` (Claude Code's variable), else
  `GOOGLE_CLOUD_PROJECT`, else the `project_id` of the service-account key file the
  credentials come from (`{P}_CREDENTIALS` or `GOOGLE_APPLICATION_CREDENTIALS`), which is what
  `google.auth.default` returns for one. It is read at start-up: it is part of every URL.
- Location: `{P}_LOCATION`, else `CLOUD_ML_REGION` (Claude Code's), else the region of the
  provider's own base URL (`us-east5-aiplatform.googleapis.com`), else `global`.
- Base URL (providers.md 3a): `global` is `https://aiplatform.googleapis.com/v1` (a `global-`
  host prefix is a 404, BYK/loreai#987), the multi-regions `us` / `eu` are
  `https://aiplatform.{us|eu}.rep.googleapis.com/v1`, a region r is
  `https://{r}-aiplatform.googleapis.com/v1`.
- Auth: `{P}_API_KEY` is an OAuth access token sent as a bearer (`gcloud auth
  print-access-token`, valid about an hour); `{P}_AUTH=google` loads Application Default
  Credentials with google-auth (`pip install 'vandamme-proxy[gcp]'`) and refreshes them
  (vdm/upstream/gcp_auth.py). Like `{P}_AUTH=sigv4`, `{P}_AUTH=google` set by the user is what
  configures such a provider: it has no key.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

VERTEX_FORMAT = "vertex"
#: `{P}_AUTH=google`: Application Default Credentials (or `{P}_CREDENTIALS`), by google-auth.
GOOGLE = "google"
PROJECT_VARS = ("ANTHROPIC_VERTEX_PROJECT_ID", "GOOGLE_CLOUD_PROJECT")
LOCATION_VARS = ("CLOUD_ML_REGION",)
CREDENTIALS_VAR = "GOOGLE_APPLICATION_CREDENTIALS"
DEFAULT_LOCATION = "global"
GLOBAL_URL = "https://aiplatform.googleapis.com/v1"
MULTI_REGION_URL = "https://aiplatform.{location}.rep.googleapis.com/v1"
REGION_URL = "https://{location}-aiplatform.googleapis.com/v1"
MULTI_REGIONS = ("us", "eu")
#: The scope google-auth is asked for (the anthropic SDK's Vertex client asks for the same).
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
#: `pip install` of the optional extra that brings google-auth.
EXTRA = "pip install 'vandamme-proxy[gcp]'"
#: A Google Cloud region or multi-region as URLs spell it: `us-east5`, `europe-west1`, `us`.
_LOCATION = re.compile(r"^[a-z]+(-[a-z]+\d+)?$")
#: `{region}-aiplatform.googleapis.com` and `aiplatform.{us|eu}.rep.googleapis.com`.
_REGION_HOST = re.compile(r"^([a-z]+-[a-z]+\d+)-aiplatform\.googleapis\.com$")
_REP_HOST = re.compile(r"^aiplatform\.([a-z]+)\.rep\.googleapis\.com$")


@dataclass(frozen=True, slots=True)
class GcpConfig:
    """Where a Vertex provider's models are (project, location) and, for `{P}_AUTH=google`,
    where its credentials come from (a key file, else Application Default Credentials)."""

    project: str
    location: str = DEFAULT_LOCATION
    #: Whether google-auth provides the token (`{P}_AUTH=google`); else `{P}_API_KEY` is it.
    adc: bool = False
    #: A credentials file (`{P}_CREDENTIALS`, `GOOGLE_APPLICATION_CREDENTIALS` from any
    #: layer): loaded instead of searching for Application Default Credentials.
    credentials_file: str | None = None

    @property
    def models_prefix(self) -> str:
        """The path (after the base URL) under which the project's Claude models are."""
        return f"/projects/{self.project}/locations/{self.location}/publishers/anthropic/models"


def vertex_url(location: str) -> str:
    """Vertex AI's endpoint for `location` (providers.md 3a)."""
    if location == DEFAULT_LOCATION:
        return GLOBAL_URL
    template = MULTI_REGION_URL if location in MULTI_REGIONS else REGION_URL
    return template.format(location=location)


def location_from_url(url: str) -> str | None:
    """The location a Vertex host names; `global` for the global host; None for another."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "aiplatform.googleapis.com":
        return DEFAULT_LOCATION
    match = _REGION_HOST.match(host) or _REP_HOST.match(host)
    return match.group(1) if match else None


def location_of(get: Callable[[str], str], prefix: str, base_url: str = "") -> str:
    """The provider's Vertex location: its own setting, Claude Code's `CLOUD_ML_REGION`, the
    one its base URL names, else `global`."""
    for var in (f"{prefix}_LOCATION", *LOCATION_VARS):
        found = get(var).strip().lower()
        if found:
            return found
    return location_from_url(base_url) or DEFAULT_LOCATION


def credentials_file(get: Callable[[str], str], prefix: str) -> str | None:
    return get(f"{prefix}_CREDENTIALS") or get(CREDENTIALS_VAR) or None


def project_of(get: Callable[[str], str], prefix: str) -> str | None:
    """The provider's project: its setting, the variables Claude Code and Google's tools
    read, else the `project_id` of its service-account key file; None when none says."""
    for var in (f"{prefix}_PROJECT", *PROJECT_VARS):
        found = get(var).strip()
        if found:
            return found
    path = credentials_file(get, prefix)
    return _file_project(path) if path else None


def _file_project(path: str) -> str | None:
    """`project_id` (a service-account key) or `quota_project_id` (a user's ADC file)."""
    try:
        data = json.loads(Path(path).expanduser().read_text())
    except (OSError, ValueError):
        return None  # google-auth reports an unreadable file when it loads it, with its path
    if not isinstance(data, dict):
        return None
    found = data.get("project_id") or data.get("quota_project_id")
    return found if isinstance(found, str) and found else None


def read_gcp(
    get: Callable[[str], str], prefix: str, name: str, base_url: str, adc: bool, vertex: bool = True
) -> tuple[GcpConfig | None, list[str]]:
    """A Vertex provider's settings (or, `vertex` False, those of another format's provider
    with `{P}_AUTH=google`, which needs no project), or None and the problems naming the fix."""
    location = location_of(get, prefix, base_url)
    problems: list[str] = []
    if not _LOCATION.match(location):
        problems.append(
            f"provider {name!r}: {prefix}_LOCATION / CLOUD_ML_REGION {location!r} is not a "
            "Google Cloud location (e.g. global, us-east5, europe-west1, us, eu)"
        )
    project = project_of(get, prefix) or (None if vertex else "")
    if project is None:
        problems.append(
            f"provider {name!r}: no Google Cloud project: set {prefix}_PROJECT (or "
            "ANTHROPIC_VERTEX_PROJECT_ID / GOOGLE_CLOUD_PROJECT) to the project the Claude "
            "models are enabled in"
        )
    elif project and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9:._-]*", project):
        problems.append(f"provider {name!r}: project {project!r} is not a Google Cloud project id")
    if adc:
        problems.extend(credentials_problems(name))
    if problems or project is None:
        return None, problems
    file = credentials_file(get, prefix) if adc else None
    return GcpConfig(project, location, adc, file), []


def google_auth_available() -> bool:
    """Whether google-auth can be imported (found, not imported: it weighs 23 MB of RSS)."""
    try:
        return importlib.util.find_spec("google.auth") is not None
    except ImportError:  # no `google` namespace package at all
        return False


def credentials_problems(name: str) -> list[str]:
    """Why a `{P}_AUTH=google` provider cannot get tokens: google-auth is missing."""
    if google_auth_available():
        return []
    return [
        f"provider {name!r} authenticates with Google credentials ({GOOGLE}) but google-auth "
        f"is not installed: `{EXTRA}`, or set its API key to an access token (`gcloud auth "
        "print-access-token`) and remove its AUTH setting"
    ]


def ignored_key(name: str, prefix: str) -> str:
    return (
        f"{prefix}_API_KEY is ignored: provider {name!r} authenticates with Google credentials "
        f"({prefix}_AUTH={GOOGLE})"
    )


def google_provider_names(
    variables: Iterable[str], get: Callable[[str], str], user_set: Callable[[str], bool]
) -> set[str]:
    """Providers configured without a `{P}_API_KEY`: `{P}_AUTH=google` set by the user."""
    return {
        var.removesuffix("_AUTH").lower()
        for var in variables
        if var.endswith("_AUTH")
        and "CUSTOM_HEADER_" not in var  # a header named `X-Auth`, not a provider's scheme
        and user_set(var)
        and get(var).lower() == GOOGLE
    }
