"""Parse and join storage URIs, and scrub secrets out of any text we show."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

from pytest_dlio.errors import StorageError

SCHEMES = ("file", "direct", "mem", "s3", "az")


@dataclass(frozen=True)
class ParsedUri:
    """``scheme://netloc/path`` split once: ``netloc`` is a bucket, container, account or memory name."""

    scheme: str
    netloc: str
    path: str  # no leading or trailing "/" for object stores; absolute for file/direct


def is_uri(text: str) -> bool:
    """Whether ``text`` starts with one of our schemes."""
    return any(text.startswith(f"{s}://") for s in SCHEMES)


def parse_uri(uri: str) -> ParsedUri:
    """Split a storage URI; raise StorageError naming the accepted forms when it is not one."""
    m = re.match(r"^([a-z0-9]+)://([^/]*)(.*)$", uri)
    if not m or m.group(1) not in SCHEMES:
        raise StorageError(
            uri,
            "open",
            reason="not a storage URI; use file:///abs/path, direct:///abs/path, "
            "s3://bucket/prefix, az://container/prefix or mem://name",
        )
    scheme, netloc, path = m.group(1), m.group(2), unquote(m.group(3))
    if "@" in netloc:  # never echo it: the part before '@' is a credential
        shown = f"{scheme}://***@{netloc.rsplit('@', 1)[1]}{m.group(3)}"
        raise StorageError(
            shown,
            "open",
            reason="credentials in a URI (user:secret@…) are refused: they would "
            "show in the header and reports; give them in "
            "storage.storage_options or the environment (AWS_ACCESS_KEY_ID, "
            "AZURE_STORAGE_KEY, …)",
        )
    if ".." in path.replace("\\", "/").split("/"):
        raise StorageError(
            uri,
            "open",
            reason="'..' in a storage path is refused: a run stays inside its "
            "root; write the path without '..'",
        )
    if scheme in ("file", "direct"):
        if netloc not in ("", "localhost"):
            raise StorageError(
                uri, "open", reason=f"{scheme}:// needs an absolute path, e.g. {scheme}:///data/dlio"
            )
        if not path.startswith("/"):
            raise StorageError(
                uri, "open", reason=f"{scheme}:// needs an absolute path, e.g. {scheme}:///data/dlio"
            )
        return ParsedUri(scheme, "", path.rstrip("/") or "/")
    if not netloc:
        raise StorageError(uri, "open", reason=f"{scheme}:// needs a name, e.g. {scheme}://name/prefix")
    return ParsedUri(scheme, netloc, path.strip("/"))


def relative_folder(folder: str) -> str:
    """A config folder as a relative key prefix: strip ``./`` and leading/trailing ``/``; ``..`` is refused
    (the schema refuses it first; this keeps every caller inside its root whatever it was given)."""
    parts = [p for p in folder.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise StorageError(
            folder,
            "resolve",
            reason="'..' would leave the data root or --dlio-storage root; write the folder without '..'",
        )
    return "/".join(parts)


def join_uri(base: str, rel: str) -> str:
    """``base`` URI joined with a relative path (no double slashes)."""
    rel = relative_folder(rel)
    if not rel:
        return base.rstrip("/") if not base.endswith(":///") else base
    return f"{base.rstrip('/')}/{rel}"


@dataclass(frozen=True)
class Throttle:
    """What ``?bandwidth_mib_s=B&latency_ms=L`` on a store URI asks for (see ``storage/throttle.py``)."""

    #: Total bandwidth cap in MiB/s shared by every store opened with it (None: no cap).
    bandwidth_mib_s: float | None = None
    #: Milliseconds added to each request.
    latency_ms: float = 0.0


#: The query parameters a store URI accepts, with what each must be.
THROTTLE_PARAMS = {"bandwidth_mib_s": "a number > 0 (MiB/s)", "latency_ms": "a number >= 0 (milliseconds)"}


def split_query(uri: str) -> tuple[str, str]:
    """``(uri without its query, query)``: ``"file:///d?latency_ms=1"`` → ``("file:///d", "latency_ms=1")``."""
    base, _, query = uri.partition("?")
    return base, query


def with_query(uri: str, query: str) -> str:
    """``uri`` with ``query`` appended (unchanged when the query is empty)."""
    return f"{uri}?{query}" if query else uri


def parse_throttle(uri: str) -> tuple[str, Throttle | None]:
    """``(base URI, Throttle or None)``; StorageError naming the valid parameters when the query is bad."""
    base, query = split_query(uri)
    if not query:
        return base, None
    valid = "; valid: " + ", ".join(f"{k}={v}" for k, v in THROTTLE_PARAMS.items())
    values: dict[str, float] = {}
    for name, text in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if name not in THROTTLE_PARAMS:
            raise StorageError(base, "open", reason=f"unknown URI query parameter {name!r}{valid}")
        if name in values:
            raise StorageError(base, "open", reason=f"URI query parameter {name} given twice")
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (name == "bandwidth_mib_s" and value == 0):
            raise StorageError(
                base, "open", reason=f"URI query parameter {name}={text!r}: must be {THROTTLE_PARAMS[name]}"
            )
        values[name] = value
    if not values:
        raise StorageError(base, "open", reason=f"URI query {query!r} names no parameter{valid}")
    return base, Throttle(values.get("bandwidth_mib_s"), values.get("latency_ms", 0.0))


_SECRET_PATTERNS = [
    re.compile(r"(AccountKey=)[^;\s'\"]+", re.I),
    re.compile(r"(SharedAccessSignature=)[^;\s'\"]+", re.I),
    re.compile(r"([?&]sig=)[^&\s'\"]+", re.I),
    re.compile(r"(X-Amz-Signature=)[^&\s'\"]+", re.I),
    re.compile(r"(X-Amz-Credential=)[^&\s'\"]+", re.I),
    re.compile(r"(X-Amz-Security-Token=)[^&\s'\"]+", re.I),
    re.compile(r"(Signature=)[^,\s'\"]+"),
    re.compile(r"(Credential=)[^,\s'\"]+"),
    re.compile(r"(aws_secret_access_key['\"]?\s*[:=]\s*['\"]?)[^'\"\s,]+", re.I),
]


def scrub(text: str, secrets: tuple[str, ...] | list[str] = ()) -> str:
    """``text`` with every known secret value and every key/signature-looking field replaced by ``***``."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    for pat in _SECRET_PATTERNS:
        text = pat.sub(r"\1***", text)
    return text
