"""The AWS side of a provider's configuration: Bedrock's region and default URL, and how a
SigV4 provider (`{P}_AUTH=sigv4`) is discovered and signs.

- Region: `{P}_REGION`, else `AWS_REGION`, else `AWS_DEFAULT_REGION` (the order Claude Code and
  the AWS SDKs read them in), else the region in the provider's own base URL
  (`bedrock-runtime.eu-west-1.amazonaws.com`).
- A `bedrock`-format provider without a base URL gets Bedrock's runtime endpoint in its region;
  the `bedrock` preset switched to the `anthropic` format gets the mantle endpoint (the
  Anthropic Messages API on Bedrock).
- Discovery: a provider needs no `{P}_API_KEY` to sign with SigV4; `{P}_AUTH=sigv4` set by the
  user is what configures it (the signature is its key). A provider named `bedrock` is also
  discovered from `AWS_BEARER_TOKEN_BEDROCK`, the Bedrock API key variable botocore and Claude
  Code read (botocore/handlers.py derives it from the signing name `bedrock`).
- Signing name: `{P}_SIGV4_SERVICE`, else from the host: `bedrock-mantle` for the mantle
  endpoint (`bedrock-mantle.{region}.api.aws`, anthropic-sdk-python lib/bedrock/_mantle.py),
  else `bedrock` (botocore's signing name for bedrock-runtime).
- Credentials: `{P}_PROFILE` names a profile, which only botocore can read; otherwise
  `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, from any layer (a `.env`
  too, which botocore would not see), are used as they are; otherwise `AWS_PROFILE` or
  botocore's default chain (SSO, assume-role, container and instance roles) at run time, from
  the optional extra `pip install 'vandamme-proxy[aws]'` (vdm/upstream/aws_auth.py).
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

SIGV4 = "sigv4"
BEDROCK_FORMAT = "bedrock"
#: The provider `AWS_BEARER_TOKEN_BEDROCK` configures.
BEDROCK_PROVIDER = "bedrock"
BEARER_TOKEN_VAR = "AWS_BEARER_TOKEN_BEDROCK"
REGION_VARS = ("AWS_REGION", "AWS_DEFAULT_REGION")
CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
RUNTIME_URL = "https://bedrock-runtime.{region}.amazonaws.com"
MANTLE_URL = "https://bedrock-mantle.{region}.api.aws/anthropic"
#: `pip install` of the optional extra that brings botocore's credential chain.
EXTRA = "pip install 'vandamme-proxy[aws]'"
#: A region where AWS endpoints spell it: `us-east-1`, `eu-central-2`, `us-gov-west-1`.
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d+$")
#: Bedrock hosts that carry their region: `bedrock-runtime[-fips].{region}.amazonaws.com`,
#: `bedrock-mantle.{region}.api.aws`, `bedrock[-fips].{region}.amazonaws.com`.
_BEDROCK_HOST = re.compile(r"^bedrock(?:-runtime|-mantle)?(?:-fips)?\.([a-z0-9-]+)\.")


@dataclass(frozen=True, slots=True)
class AwsAuth:
    """How a SigV4 provider signs: its region and signing name, and where its credentials
    come from (a profile, the keys given as settings, or botocore's default chain)."""

    region: str
    service: str = "bedrock"
    #: A named profile (`{P}_PROFILE`, `AWS_PROFILE`): botocore reads it.
    profile: str | None = None
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    @property
    def static(self) -> bool:
        """Whether the keys given as settings are the credentials (no botocore needed)."""
        return self.profile is None and bool(self.access_key and self.secret_key)

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never be shown: the secret key and the session token."""
        return tuple(s for s in (self.secret_key, self.session_token) if s)


def region_of(get: Callable[[str], str], prefix: str, base_url: str = "") -> str:
    """The provider's AWS region: `{P}_REGION`, `AWS_REGION`, `AWS_DEFAULT_REGION`, else the
    one its base URL's host names; "" when none says."""
    for var in (f"{prefix}_REGION", *REGION_VARS):
        found = get(var).strip().lower()
        if found:
            return found
    return region_from_url(base_url) or ""


def region_from_url(url: str) -> str | None:
    """The region a Bedrock host names (`bedrock-runtime.eu-west-1.amazonaws.com`)."""
    match = _BEDROCK_HOST.match((urlsplit(url).hostname or "").lower())
    if match and _REGION.match(match.group(1)):
        return match.group(1)
    return None


def bedrock_url(api_format: str, region: str) -> str:
    """Bedrock's endpoint in `region` for a provider without a base URL: the runtime for the
    `bedrock` format, mantle for `anthropic` (a Bedrock preset switched to the Messages API);
    "" for another format (its base URL must be given)."""
    found = {BEDROCK_FORMAT: RUNTIME_URL, "anthropic": MANTLE_URL}.get(api_format, "")
    return found.format(region=region)


def service_for(url: str) -> str:
    """The SigV4 signing name for a base URL: `bedrock-mantle` on the mantle host, else
    `bedrock` (bedrock-runtime's, and a VPC or private endpoint's in front of it)."""
    host = (urlsplit(url).hostname or "").lower()
    return "bedrock-mantle" if host.startswith("bedrock-mantle") else "bedrock"


def no_region(name: str, prefix: str) -> str:
    """The problem of a Bedrock provider whose region is unknown, naming the variables."""
    return (
        f"provider {name!r}: no AWS region: set {prefix}_REGION (or AWS_REGION / "
        f"AWS_DEFAULT_REGION), e.g. us-east-1; the endpoint is "
        f"{RUNTIME_URL.format(region='{region}')} unless {prefix}_BASE_URL says otherwise"
    )


def read_aws(get: Callable[[str], str], prefix: str, base_url: str, region: str) -> AwsAuth:
    """The signing settings of a SigV4 provider (its region already found)."""
    access_key, secret_key, token = (get(var) or None for var in CREDENTIAL_VARS)
    # As botocore: a profile named for the provider wins over keys in the environment, which
    # win over AWS_PROFILE (its env provider comes first unless a profile is passed in).
    keys = access_key and secret_key
    profile = get(f"{prefix}_PROFILE") or (None if keys else get("AWS_PROFILE")) or None
    return AwsAuth(
        region=region,
        service=get(f"{prefix}_SIGV4_SERVICE") or service_for(base_url),
        profile=profile,
        access_key=access_key,
        secret_key=secret_key,
        session_token=token,
    )


def botocore_available() -> bool:
    """Whether botocore can be imported (found, not imported: it weighs 21 MB of RSS)."""
    return importlib.util.find_spec("botocore") is not None


def credentials_problems(name: str, aws: AwsAuth) -> list[str]:
    """Why a SigV4 provider cannot find credentials, naming both fixes; none when it can
    (keys given as settings, or botocore to read a profile or the default chain)."""
    if aws.static or botocore_available():
        return []
    wanted = f"profile {aws.profile!r} needs botocore" if aws.profile else "no AWS credentials"
    return [
        f"provider {name!r} signs with SigV4 but {wanted}: set AWS_ACCESS_KEY_ID and "
        f"AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones), or `{EXTRA}` for "
        "profiles, SSO and instance roles"
    ]


def ignored_key(name: str, prefix: str) -> str:
    return f"{prefix}_API_KEY is ignored: provider {name!r} signs with SigV4 ({prefix}_AUTH=sigv4)"


def aws_provider_names(
    variables: Iterable[str], get: Callable[[str], str], user_set: Callable[[str], bool]
) -> set[str]:
    """Providers configured without a `{P}_API_KEY`: `{P}_AUTH=sigv4` set by the user, and
    `bedrock` when `AWS_BEARER_TOKEN_BEDROCK` is set."""
    names = {
        var.removesuffix("_AUTH").lower()
        for var in variables
        if var.endswith("_AUTH")
        and "CUSTOM_HEADER_" not in var  # a header named `X-Auth`, not a provider's scheme
        and user_set(var)
        and get(var).lower() == SIGV4
    }
    if user_set(BEARER_TOKEN_VAR):
        names.add(BEDROCK_PROVIDER)
    return names
