"""``storage.storage_options`` as typed, frozen settings: S3, Azure, tuning, parquet columns, library.

The YAML mapping is parsed here, once; nothing past ``config/`` reads the raw keys. Each problem is a
``(key, message)`` pair so the ``schema`` item can cite ``file:line:col``; messages about a secret key
never echo its value. Values as written are what the user gave: resolution against the environment and
``.env`` (and the defaults) happens once per session in ``storage/credentials.py``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pytest_dlio.config.secrets import SECRET_KEYS

MiB = 2**20
GiB = 2**30
S3_MIN_PART = 5 * MiB


@dataclass(frozen=True)
class S3Options:
    """DLIO's S3 keys as given (None: not given; resolved later against AWS_* and ``.env``)."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    #: ``s3_force_path_style``; None: path style exactly when an endpoint is configured.
    force_path_style: bool | None = None
    #: ``s3_max_attempts``: attempts per request, retries included.
    max_attempts: int | None = None


@dataclass(frozen=True)
class AzureOptions:
    """Azure Blob keys as given (resolved later against AZURE_STORAGE_* and ``.env``)."""

    connection_string: str | None = field(default=None, repr=False)
    account_name: str | None = None
    account_key: str | None = field(default=None, repr=False)
    #: ``account_url``, else ``endpoint_url``: the blob service URL (default https://ACCOUNT.blob.core.windows.net).
    account_url: str | None = None
    sas_token: str | None = field(default=None, repr=False)
    api_version: str | None = None
    #: ``max_attempts``: attempts per request, retries included.
    max_attempts: int | None = None


@dataclass(frozen=True)
class Tuning:
    """Object-store tuning (None: the backend's default)."""

    #: S3 multipart part / Azure staged block size in bytes.
    part_size: int | None = None
    #: Parts, blocks or ranges in flight per object.
    concurrency: int | None = None
    #: Read timeout in seconds (and the connect timeout when ``connect_timeout`` is not given).
    timeout: float | None = None
    #: Connect timeout in seconds.
    connect_timeout: float | None = None
    #: Keys per list request.
    list_page_size: int | None = None


@dataclass(frozen=True)
class StorageOptions:
    """Everything ``storage.storage_options`` may say, typed."""

    s3: S3Options = field(default_factory=S3Options)
    azure: AzureOptions = field(default_factory=AzureOptions)
    tuning: Tuning = field(default_factory=Tuning)
    #: ``columns``: the parquet columns a read selects (DLIO's key); None: decided by dataset.parquet.
    columns: tuple[str, ...] | None = None
    #: ``storage_library`` (MLPerf v3.0: s3dlio, minio, s3torchconnector, direct): the client library of
    #: s3:// stores (``storage/factory.py``); None or direct: aiobotocore.
    storage_library: str | None = None
    #: ``prefetch_window``: parquet row-group reads a reader keeps in flight ahead of the step (MLPerf
    #: v3.0's DLIO; None: its default, 64; 0: none, each row group read when a step needs it).
    prefetch_window: int | None = None
    #: ``prefetch_workers``: threads a reader runs those row-group reads on (None: DLIO's 64).
    prefetch_workers: int | None = None
    #: ``uri_scheme``: the scheme ``storage_type: s3`` folders resolve to (s3 or az; default s3).
    uri_scheme: str | None = None
    #: v3.0 parquet-reader and S3 keys we accept and do not act on (prefetch, footer_*, s3_profile, …).
    accepted: tuple[tuple[str, Any], ...] = ()


Problem = tuple[str, str]  # (storage_options key, message)
_Parse = Callable[[str, Any], Any]  # (key, value) -> typed value; raises ValueError(message)


def _text(key: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if key in SECRET_KEYS:
        raise ValueError("must be a string")
    if isinstance(value, bool):
        raise ValueError(
            f"must be a string, got the YAML boolean {str(value).lower()} (quote it if you meant the text)"
        )
    raise ValueError(f"must be a string, got {value!r}")


def _url(key: str, value: Any) -> str:
    text = _text(key, value)
    parts = urlsplit(text)
    if "@" in parts.netloc:
        raise ValueError(
            "must not carry credentials in the URL (value not shown); use access_key_id/"
            "secret_access_key or account_key/sas_token"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http(s) URL such as http://127.0.0.1:9000, got {text!r}")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"has a bad port: {text!r}") from None
    return text


def _flag(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"must be true or false, got {value!r}")


def _whole(lo: int, hi: int, unit: str = "") -> _Parse:
    def parse(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            quoted = " (remove the quotes)" if isinstance(value, str) and value.strip().isdigit() else ""
            raise ValueError(f"must be a whole number, got {value!r}{quoted}")
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo:,} and {hi:,}{unit}, got {value:,}")
        return value

    return parse


def _seconds(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be a number of seconds, got {value!r}")
    if not 0 < value <= 86_400:
        raise ValueError(f"must be > 0 and at most 86400 seconds, got {value!r}")
    return float(value)


def _choice(*allowed: str, hint: str = "") -> _Parse:
    def parse(key: str, value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"{value!r} is not valid; expected one of {', '.join(allowed)}{hint}")
        return str(value)

    return parse


def _columns(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(c, str) and c for c in value):
        raise ValueError("must be a list of column names")
    dup = sorted({c for c in value if list(value).count(c) > 1})
    if dup:
        raise ValueError(f"names {', '.join(dup)} more than once")
    return tuple(value)


def _connection_string(key: str, value: Any) -> str:
    text = _text(key, value)
    fields = {
        k.strip().lower() for k, sep, _ in (p.partition("=") for p in text.split(";") if p.strip()) if sep
    }
    pieces = [p for p in text.split(";") if p.strip()]
    if len(fields) != len(pieces) or not ({"accountname", "blobendpoint", "usedevelopmentstorage"} & fields):
        raise ValueError(
            "is not an Azure connection string (Key=Value pairs separated by ';' with "
            "AccountName or BlobEndpoint; value not shown)"
        )
    return text


def _account_key(key: str, value: Any) -> str:
    text = _text(key, value)
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not base64, as Azure account keys are (value not shown)") from None
    return text


def _sas(key: str, value: Any) -> str:
    text = _text(key, value)
    if "sig=" not in text:
        raise ValueError("is not a SAS token (a query string such as sv=…&sig=…; value not shown)")
    return text


def _api_version(key: str, value: Any) -> str:
    text = _text(key, value)
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError(f"must be a date-like service version such as 2023-11-03, got {text!r}")
    return text


def _scalar(*kinds: type) -> _Parse:
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}

    def parse(key: str, value: Any) -> Any:
        ok = any(isinstance(value, k) and (k is bool or not isinstance(value, bool)) for k in kinds)
        if not ok or (isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0):
            want = " or ".join(names[k] for k in kinds)
            raise ValueError(f"must be {want}{'' if kinds == (str,) else ' (>= 0)'}, got {value!r}")
        return value

    return parse


#: Keys MLPerf v3.0's readers and DLIO's S3 code read that we accept, type-check and do not act on.
_ACCEPTED: dict[str, _Parse] = {
    "secure": _scalar(bool),
    "s3_profile": _scalar(str),
    "use_full_object_uri": _scalar(bool),
    "prefetch": _scalar(bool, int),
    "max_outstanding": _scalar(int),
    "stagger_workers": _scalar(bool, int, float),
    "footer_cap": _scalar(int),
    "footer_batch_size": _scalar(int),
    "coalesce_rgs": _scalar(bool, int),
    "decode": _choice("raw", "arrow"),
    "decode_output": _scalar(str),
    "simulate_io": _scalar(bool),
    "sim_log_secs": _scalar(int, float),
}

#: key -> (section, attribute, parser); section "" is StorageOptions itself.
_KEYS: dict[str, tuple[str, str, _Parse]] = {
    "endpoint_url": ("s3", "endpoint_url", _url),
    "region": ("s3", "region", _text),
    "access_key_id": ("s3", "access_key_id", _text),
    "secret_access_key": ("s3", "secret_access_key", _text),
    "session_token": ("s3", "session_token", _text),
    "s3_force_path_style": ("s3", "force_path_style", _flag),
    "s3_max_attempts": ("s3", "max_attempts", _whole(1, 100)),
    "connection_string": ("azure", "connection_string", _connection_string),
    "account_name": ("azure", "account_name", _text),
    "account_key": ("azure", "account_key", _account_key),
    "account_url": ("azure", "account_url", _url),
    "sas_token": ("azure", "sas_token", _sas),
    "api_version": ("azure", "api_version", _api_version),
    "max_attempts": ("azure", "max_attempts", _whole(1, 100)),
    "part_size": (
        "tuning",
        "part_size",
        _whole(S3_MIN_PART, 5 * GiB, " bytes (5 MiB, S3's least part, to 5 GiB)"),
    ),
    "concurrency": ("tuning", "concurrency", _whole(1, 1024)),
    "timeout": ("tuning", "timeout", _seconds),
    "connect_timeout": ("tuning", "connect_timeout", _seconds),
    "list_page_size": ("tuning", "list_page_size", _whole(1, 5000, " (S3 serves at most 1000, Azure 5000)")),
    "columns": ("", "columns", _columns),
    "prefetch_window": ("", "prefetch_window", _whole(0, 4096, " row groups")),
    "prefetch_workers": ("", "prefetch_workers", _whole(1, 1024, " threads")),
    "storage_library": ("", "storage_library", _choice("s3dlio", "minio", "s3torchconnector", "direct")),
    "uri_scheme": (
        "",
        "uri_scheme",
        _choice(
            "s3",
            "az",
            hint=" (gs, file and direct have no storage_type: s3 "
            "backend here; pass --dlio-storage URI instead)",
        ),
    ),
}
VALID_KEYS = (*_KEYS, *_ACCEPTED)


def parse_storage_options(raw: Mapping[str, Any]) -> tuple[StorageOptions, list[Problem]]:
    """Typed options and every problem found; ``None`` and ``""`` count as not given."""
    sections: dict[str, dict[str, Any]] = {"s3": {}, "azure": {}, "tuning": {}, "": {}}
    accepted: list[tuple[str, Any]] = []
    problems: list[Problem] = []
    for key, value in sorted(raw.items()):
        if key not in _KEYS and key not in _ACCEPTED:
            problems.append((key, f"unknown key; valid keys: {', '.join(VALID_KEYS)}"))
            continue
        if value is None or value == "":
            continue
        if key in _ACCEPTED:
            try:
                accepted.append((key, _ACCEPTED[key](key, value)))
            except ValueError as exc:
                problems.append((key, str(exc)))
            continue
        section, attr, parse = _KEYS[key]
        try:
            sections[section][attr] = parse(key, value)
        except ValueError as exc:
            problems.append((key, str(exc)))
    if "account_url" not in sections["azure"] and "endpoint_url" in sections["s3"]:
        sections["azure"]["account_url"] = sections["s3"]["endpoint_url"]  # one endpoint key for both
    options = StorageOptions(
        s3=S3Options(**sections["s3"]),
        azure=AzureOptions(**sections["azure"]),
        tuning=Tuning(**sections["tuning"]),
        accepted=tuple(accepted),
        **sections[""],
    )
    return options, problems
