"""StorageSession: one per pytest session — folder → URI resolution, store opening, emulators."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_dlio.config.storage_options import StorageOptions
from pytest_dlio.errors import StorageError
from pytest_dlio.storage.base import ObjectStore
from pytest_dlio.storage.credentials import Credentials, Environment
from pytest_dlio.storage.emulators import (
    AZURITE_ACCOUNT,
    MOTO_KEY,
    Emulators,
    azurite_connection_string,
    ensure_azurite,
)
from pytest_dlio.storage.factory import open_store, require_extra, s3_library
from pytest_dlio.storage.file import remove_stale_temps
from pytest_dlio.storage.settings import StoreOptions
from pytest_dlio.storage.uri import (
    is_uri,
    join_uri,
    parse_throttle,
    parse_uri,
    relative_folder,
    split_query,
    with_query,
)

if TYPE_CHECKING:
    from pytest_dlio.config.model import StorageConfig

_LOCAL = {"local_fs": "file", "parallel_fs": "file", "direct_fs": "direct"}
_LABELS = {"moto": "S3: embedded moto", "azurite": "Azure: embedded Azurite"}
#: The client behind each scheme but s3:// (where ``storage_library`` picks one), as items report it.
_CLIENTS = {"file": "posix", "direct": "o_direct", "mem": "memory", "az": "azure-storage-blob"}


def _library(storage: StorageConfig | None) -> str | None:
    """``storage.storage_options.storage_library``, else DLIO's flat ``storage.storage_library``."""
    return (storage.options.storage_library or storage.storage_library) if storage else None


def needs_moto(opts: StoreOptions) -> bool:
    """True when no S3 endpoint is configured (option, AWS_ENDPOINT_URL[_S3], .env)."""
    return opts.s3.endpoint_url is None


def needs_azurite(opts: StoreOptions) -> bool:
    """True when no Azure credential or account is configured anywhere."""
    return not opts.azure.configured


class StorageSession:
    """Resolves config folders to URIs and opens stores, starting embedded emulators on demand."""

    def __init__(
        self,
        data_root: Path,
        storage_uri: str | None = None,
        emulators: Emulators | None = None,
        environment: Environment | None = None,
    ) -> None:
        self.data_root = data_root.resolve()
        self.storage_uri = storage_uri
        if storage_uri:
            base, query = split_query(storage_uri)
            base = base.rstrip("/") if not base.endswith(":///") else base
            parse_throttle(storage_uri)  # fail early on a malformed --dlio-storage
            parse_uri(base)
            self.storage_uri = with_query(base, query)
        self.emulators = emulators or Emulators()
        self._environment = environment
        self._credentials: dict[StorageOptions, Credentials] = {}
        self._swept: set[Path] = set()  # local roots already cleared of dead writers' temp files

    # ---- folder → URI ----
    def resolve(self, folder: str, storage: StorageConfig | None = None) -> str:
        """The URI for a config folder (dataset.data_folder or checkpoint.checkpoint_folder)."""
        if self.storage_uri:
            if is_uri(folder):
                folder = parse_uri(split_query(folder)[0]).path
            base, query = split_query(self.storage_uri)  # a throttle query stays at the end
            return with_query(join_uri(base, folder), query)
        if is_uri(folder):
            return folder
        kind = storage.storage_type if storage else "local_fs"
        if kind in _LOCAL:
            path = Path(folder) if Path(folder).is_absolute() else self.data_root / relative_folder(folder)
            if ".." in path.parts:
                raise StorageError(
                    folder, "resolve", reason="'..' in a folder is refused; write it without '..'"
                )
            return f"{_LOCAL[kind]}://{path}"
        if kind == "s3":
            scheme = (storage.options.uri_scheme if storage else None) or "s3"
            root = relative_folder((storage.storage_root if storage else "").split("://", 1)[-1])
            if not root:
                raise StorageError(
                    "s3://",
                    "resolve",
                    folder,
                    "storage.storage_root must name the bucket "
                    "(e.g. storage_root: my-bucket) or pass --dlio-storage",
                )
            return join_uri(f"{scheme}://{root}", folder)
        raise StorageError(
            f"{kind}://",
            "resolve",
            folder,
            f"storage_type {kind!r} has no backend here; use "
            "local_fs, parallel_fs, direct_fs or s3, or pass --dlio-storage URI",
        )

    # ---- opening ----
    @property
    def environment(self) -> Environment:
        """The environment and ``.env`` credentials come from, read once (on first use) per session."""
        if self._environment is None:
            self._environment = Environment.capture()
        return self._environment

    def credentials(self, options: StorageOptions) -> Credentials:
        """``options`` resolved against the session's environment (once per distinct options)."""
        creds = self._credentials.get(options)
        if creds is None:
            creds = self._credentials[options] = Credentials.resolve(options, self.environment)
        return creds

    def options_for(self, uri: str, storage: StorageConfig | None = None, threads: int = 8) -> StoreOptions:
        """StoreOptions for ``uri``; swaps in an embedded emulator when nothing is configured (may start it)."""
        typed = storage.options if storage else StorageOptions()
        opts = StoreOptions.from_config(typed, self.credentials(typed), threads).with_(
            library=_library(storage)
        )
        scheme = parse_uri(uri).scheme
        if scheme == "s3":
            require_extra(uri, "s3")
            if needs_moto(opts):
                require_extra(uri, "moto")
                s3 = replace(
                    opts.s3,
                    endpoint_url=self.emulators.s3_endpoint(),
                    access_key_id=MOTO_KEY,
                    secret_access_key=MOTO_KEY,
                    session_token=None,
                    region="us-east-1",
                    path_style=True,
                )
                opts = opts.with_(
                    credentials=replace(opts.credentials, s3=s3), create_missing=True, emulator="moto"
                )
        elif scheme == "az":
            require_extra(uri, "az")
            if needs_azurite(opts):
                ensure_azurite(uri)  # installs the pinned Azurite from npm on first need, or says how
                conn = azurite_connection_string(self.emulators.azure_endpoint())
                azure = replace(opts.azure, connection_string=conn, account=AZURITE_ACCOUNT)
                opts = opts.with_(
                    credentials=replace(opts.credentials, azure=azure),
                    create_missing=True,
                    emulator="azurite",
                )
        return opts

    def library(self, uri: str, storage: StorageConfig | None = None) -> str:
        """The client library a store for ``uri`` uses (the items' ``storage_library`` property)."""
        scheme = parse_uri(split_query(uri)[0]).scheme
        if scheme == "s3":
            return s3_library(StoreOptions(library=_library(storage)))
        return _CLIENTS.get(scheme, scheme)

    async def open(self, uri: str, storage: StorageConfig | None = None, *, threads: int = 8) -> ObjectStore:
        """A new store for ``uri`` bound to the running event loop; the caller closes it."""
        opts = await asyncio.to_thread(self.options_for, uri, storage, threads)
        store = open_store(uri, opts)
        root = store.local_root
        if root is not None and root not in self._swept:
            # a killed run's temp files go on the next run's first open of the same folder (only ours,
            # only of dead writers: storage/file.py)
            self._swept.add(root)
            await asyncio.to_thread(remove_stale_temps, root)
        return store

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
        lines = [
            f"dlio data root: {self.data_root}",
            f"dlio storage: {self.storage_uri or 'from each config (local folders under the data root)'}",
        ]
        for name, endpoint in self.emulators.running().items():
            lines.append(f"{_LABELS[name]} at {endpoint} — emulator, not real storage")
        return lines

    def close(self) -> None:
        """Stop emulators this process owns."""
        self.emulators.close()
