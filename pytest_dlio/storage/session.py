"""StorageSession: one per pytest session — folder → URI resolution, store opening, emulators."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_dlio.errors import StorageError
from pytest_dlio.storage.base import ObjectStore
from pytest_dlio.storage.emulators import (
    AZURITE_ACCOUNT,
    MOTO_KEY,
    Emulators,
    azurite_connection_string,
    find_azurite,
)
from pytest_dlio.storage.factory import open_store, require_extra
from pytest_dlio.storage.settings import StoreOptions, parse_int
from pytest_dlio.storage.uri import is_uri, join_uri, parse_uri, relative_folder

if TYPE_CHECKING:
    from pytest_dlio.config.model import StorageConfig

_LOCAL = {"local_fs": "file", "parallel_fs": "file", "direct_fs": "direct"}
_LABELS = {"moto": "S3: embedded moto", "azurite": "Azure: embedded Azurite"}


def needs_moto(opts: StoreOptions) -> bool:
    """True when no S3 endpoint is configured (option, AWS_ENDPOINT_URL, .env)."""
    from pytest_dlio.storage.s3 import has_endpoint

    return not has_endpoint(opts)


def needs_azurite(opts: StoreOptions) -> bool:
    """True when no Azure credential or account is configured anywhere."""
    from pytest_dlio.storage.azure import AzureSettings

    return not AzureSettings.from_options(opts).configured


class StorageSession:
    """Resolves config folders to URIs and opens stores, starting embedded emulators on demand."""

    def __init__(self, data_root: Path, storage_uri: str | None = None, emulators: Emulators | None = None) -> None:
        self.data_root = data_root.resolve()
        self.storage_uri = storage_uri.rstrip("/") if storage_uri and not storage_uri.endswith(":///") else storage_uri
        if storage_uri:
            parse_uri(storage_uri)  # fail early on a malformed --dlio-storage
        self.emulators = emulators or Emulators()

    # ---- folder → URI ----
    def resolve(self, folder: str, storage: StorageConfig | None = None) -> str:
        """The URI for a config folder (dataset.data_folder or checkpoint.checkpoint_folder)."""
        if self.storage_uri:
            if is_uri(folder):
                folder = parse_uri(folder).path
            return join_uri(self.storage_uri, folder)
        if is_uri(folder):
            return folder
        kind = storage.storage_type if storage else "local_fs"
        if kind in _LOCAL:
            path = Path(folder) if Path(folder).is_absolute() else self.data_root / relative_folder(folder)
            if ".." in path.parts:
                raise StorageError(folder, "resolve", reason="'..' in a folder is refused; write it without '..'")
            return f"{_LOCAL[kind]}://{path}"
        if kind == "s3":
            opts = storage.options if storage else {}
            scheme = str(opts.get("uri_scheme") or "s3").lower()
            if scheme not in ("s3", "az"):
                scheme = "s3"
            root = relative_folder((storage.storage_root if storage else "").split("://", 1)[-1])
            if not root:
                raise StorageError("s3://", "resolve", folder, "storage.storage_root must name the bucket "
                                                              "(e.g. storage_root: my-bucket) or pass --dlio-storage")
            return join_uri(f"{scheme}://{root}", folder)
        raise StorageError(f"{kind}://", "resolve", folder, f"storage_type {kind!r} has no backend here; use "
                           "local_fs, parallel_fs, direct_fs or s3, or pass --dlio-storage URI")

    # ---- opening ----
    def options_for(self, uri: str, storage: StorageConfig | None = None, threads: int = 8) -> StoreOptions:
        """StoreOptions for ``uri``; swaps in an embedded emulator when nothing is configured (may start it)."""
        raw = dict(storage.options) if storage else {}
        tuning = {k: parse_int(raw[k], k) for k in ("part_size", "concurrency", "list_page_size") if k in raw}
        if "timeout" in raw:
            tuning["timeout"] = float(raw["timeout"])
        opts = StoreOptions(threads=threads, storage_options=raw, **tuning)
        scheme = parse_uri(uri).scheme
        if scheme == "s3":
            require_extra(uri, "s3")
            if needs_moto(opts):
                endpoint = self.emulators.s3_endpoint()
                merged = {**opts.storage_options, "endpoint_url": endpoint, "access_key_id": MOTO_KEY,
                          "secret_access_key": MOTO_KEY, "region": "us-east-1", "s3_force_path_style": True}
                opts = opts.with_(storage_options=merged, create_missing=True, emulator="moto")
        elif scheme == "az":
            require_extra(uri, "az")
            if needs_azurite(opts):
                if find_azurite() is None:
                    from pytest_dlio.storage.emulators import azurite_missing_reason

                    raise StorageError(uri, "open", reason=azurite_missing_reason())
                conn = azurite_connection_string(self.emulators.azure_endpoint())
                merged = {**opts.storage_options, "connection_string": conn, "account_name": AZURITE_ACCOUNT}
                opts = opts.with_(storage_options=merged, create_missing=True, emulator="azurite")
        return opts

    async def open(self, uri: str, storage: StorageConfig | None = None, *, threads: int = 8) -> ObjectStore:
        """A new store for ``uri`` bound to the running event loop; the caller closes it."""
        opts = await asyncio.to_thread(self.options_for, uri, storage, threads)
        return open_store(uri, opts)

    def start_needed_emulators(self) -> None:
        """Start the emulator --dlio-storage needs up front (so the header can name it)."""
        if not self.storage_uri or parse_uri(self.storage_uri).scheme not in ("s3", "az"):
            return
        try:
            self.options_for(self.storage_uri)
        except StorageError:
            pass  # reported by the first item that opens the store

    # ---- reporting ----
    def header_lines(self) -> list[str]:
        """Lines for pytest_report_header: data root, storage URI, running emulators. No secrets."""
        lines = [f"dlio data root: {self.data_root}",
                 f"dlio storage: {self.storage_uri or 'from each config (local folders under the data root)'}"]
        for name, endpoint in self.emulators.running().items():
            lines.append(f"{_LABELS[name]} at {endpoint} — emulator, not real storage")
        return lines

    def close(self) -> None:
        """Stop emulators this process owns."""
        self.emulators.close()
