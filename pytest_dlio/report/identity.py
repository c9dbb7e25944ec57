"""What a result is: which pytest-dlio, which config (by hash), at what scale, on how many ranks and hosts,
against which storage (without secrets) and whether that storage was an emulator.

Every summary.json carries it under ``pytest_dlio.run`` and the schema item records it as JUnit properties,
so a shrunk or emulated result can never pass for a full-size one on real storage. Baselines store it and
comparisons refuse to mix results whose identity differs where it matters (config hash, scale, ranks).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pytest_dlio import __version__
from pytest_dlio.config.secrets import SECRET_KEYS
from pytest_dlio.storage.uri import scrub

if TYPE_CHECKING:
    from pytest_dlio.config.model import WorkloadConfig

#: Keys that say *where* a workload runs, not *what* it does: left out of the config hash so that the same
#: workload on another store (the point of gating a storage change) hashes the same.
_WHERE = (("storage",), ("dataset", "data_folder"), ("checkpoint", "checkpoint_folder"))


def config_hash(cfg: WorkloadConfig) -> str:
    """sha256 of the normalised config (every default filled) minus where it runs; 16 hex digits."""
    from pytest_dlio.config.load import normalised

    doc = normalised(cfg)
    for path in _WHERE:
        node = doc
        for key in path[:-1]:
            node = node.get(key, {})
        node.pop(path[-1], None)
    text = json.dumps(doc, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def public_uri(uri: str) -> str:
    """``uri`` safe to show: no user:password, secret query values as ``***``, known secret patterns scrubbed."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return scrub(uri)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = urlencode(
        [
            (k, "***" if k.lower() in SECRET_KEYS or k.lower() in ("sig", "token") else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return scrub(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


@dataclass(frozen=True)
class RunIdentity:
    """The facts that say what a result is (all plain data; JSON and JUnit ready)."""

    pytest_dlio_version: str
    config_hash: str
    scale_factor: float
    ranks: int
    hosts: int
    storage_uri: str
    storage_emulator: str  # "moto", "azurite", "mem" (in-process memory) or "none" (real storage)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def properties(self) -> list[tuple[str, int | float | str]]:
        return list(self.as_dict().items())


def identify(
    cfg: WorkloadConfig, *, ranks: int, hosts: int, storage_uri: str, emulator: str | None
) -> RunIdentity:
    return RunIdentity(
        pytest_dlio_version=__version__,
        config_hash=config_hash(cfg),
        scale_factor=float(cfg.source.scale),
        ranks=int(ranks),
        hosts=int(hosts),
        storage_uri=public_uri(storage_uri),
        storage_emulator=emulator or ("mem" if storage_uri.startswith("mem://") else "none"),
    )
