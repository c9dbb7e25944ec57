"""``az://container/prefix`` and ``az://account/container/prefix``: azure-storage-blob aio, staged blocks."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from pytest_dlio.errors import NotFound, StorageError
from pytest_dlio.storage.base import Buffer, ObjectStore, Writer, gather_bounded
from pytest_dlio.storage.settings import StoreOptions
from pytest_dlio.storage.uri import parse_uri, scrub

T = TypeVar("T")


def split_az_uri(uri: str, account: str | None) -> tuple[str | None, str, str]:
    """``(account, container, prefix)``; the first segment is an account when it names the configured
    account, or when no account is configured and a container follows."""
    p = parse_uri(uri)
    parts = [x for x in p.path.split("/") if x]
    if parts and (p.netloc == account or account is None):
        return p.netloc, parts[0], "/".join(parts[1:])
    return None, p.netloc, "/".join(parts)


class AzureStore(ObjectStore):
    """Blobs under a container and prefix; one aio BlobServiceClient per store (so per event loop)."""

    def __init__(self, uri: str, options: StoreOptions) -> None:
        super().__init__(uri)
        self.options = options
        self._settings = options.azure
        account, self.container, prefix = split_az_uri(uri, self._settings.account)
        self._account = account or self._settings.account
        self._prefix = f"{prefix}/" if prefix else ""
        self.block_size = max(64 * 1024, options.part_size)
        self.concurrency = options.concurrency
        self._stack = contextlib.AsyncExitStack()
        self._cc: Any = None
        self._lock = asyncio.Lock()

    # ---- plumbing ----
    async def container_client(self) -> Any:
        """The container client, created (and the container created for Azurite) on first use."""
        if self._cc is None:
            async with self._lock:
                if self._cc is None:
                    self._cc = await self._connect()
        return self._cc

    def _service(self) -> Any:
        from azure.storage.blob.aio import BlobServiceClient

        s, o = self._settings, self.options
        kw: dict[str, Any] = {"max_single_put_size": self.block_size, "max_block_size": self.block_size,
                              "max_single_get_size": self.block_size, "max_chunk_get_size": self.block_size,
                              "connection_timeout": o.timeout, "read_timeout": o.timeout,
                              "retry_total": s.max_attempts}
        if s.api_version:
            kw["api_version"] = s.api_version
        if s.connection_string:
            return BlobServiceClient.from_connection_string(s.connection_string, **kw)
        if not self._account:
            raise StorageError(self.uri, "connect", reason="no Azure account; set AZURE_STORAGE_CONNECTION_STRING "
                               "or AZURE_STORAGE_ACCOUNT (+ AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN), or "
                               "use az://account/container/prefix")
        url = s.account_url or f"https://{self._account}.blob.core.windows.net"
        credential: Any = None
        if s.account_key:
            credential = {"account_name": self._account, "account_key": s.account_key}
        elif s.sas_token:
            credential = s.sas_token.lstrip("?")
        return BlobServiceClient(url, credential=credential, **kw)

    async def _connect(self) -> Any:
        try:
            service = await self._stack.enter_async_context(self._service())
        except StorageError:
            raise
        except Exception as exc:
            raise self._error(exc, "connect", None) from exc
        cc = service.get_container_client(self.container)
        if self.options.create_missing:
            from azure.core.exceptions import ResourceExistsError

            try:
                await cc.create_container()
            except ResourceExistsError:
                pass
            except Exception as exc:
                raise self._error(exc, "create_container", None) from exc
        return cc

    def _key(self, key: str) -> str:
        return self._prefix + key

    def _error(self, exc: BaseException, op: str, key: str | None) -> StorageError:
        code = str(getattr(exc, "error_code", "") or "")
        status = getattr(exc, "status_code", None)
        if code == "ContainerNotFound":
            return StorageError(self.uri, op, key, f"container {self.container!r} does not exist; create it "
                                                   "or fix the URI")
        if code == "BlobNotFound" or (status == 404 and not code):
            return NotFound(self.uri, op, key)
        if status in (401, 403) or code in ("AuthenticationFailed", "AuthorizationFailure"):
            return StorageError(self.uri, op, key, f"{code or status}: check the credentials "
                                                   "(AZURE_STORAGE_* env vars or storage_options)")
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        text = f"{code}: {first}" if code else f"{type(exc).__name__}: {first}"
        return StorageError(self.uri, op, key, scrub(text, self.options.secrets()))

    async def _call(self, op: str, key: str | None, fn: Callable[[Any], Awaitable[T]]) -> T:
        cc = await self.container_client()
        try:
            return await fn(cc)
        except StorageError:
            raise
        except Exception as exc:  # azure-core/aiohttp errors of every kind
            raise self._error(exc, op, key) from exc

    # ---- primitives ----
    async def _put(self, key: str, data: Buffer, fsync: bool) -> None:
        k = self._key(key)
        body = data if isinstance(data, bytes) else bytes(data)
        await self._call("put", key, lambda cc: cc.upload_blob(
            k, body, overwrite=True, max_concurrency=self.options.concurrency))

    async def _get(self, key: str) -> Buffer:
        k = self._key(key)

        async def _get(cc: Any) -> bytes:
            stream = await cc.download_blob(k, max_concurrency=self.options.concurrency)
            return await stream.readall()

        return await self._call("get", key, _get)

    async def _get_range(self, key: str, start: int, length: int) -> Buffer:
        k = self._key(key)

        async def _get(cc: Any) -> bytes:
            try:
                stream = await cc.download_blob(k, offset=start, length=length,
                                                max_concurrency=self.options.concurrency)
            except Exception as exc:
                if getattr(exc, "error_code", None) == "InvalidRange" or getattr(exc, "status_code", 0) == 416:
                    return b""
                raise
            return await stream.readall()

        return await self._call("get_range", key, _get)

    async def _get_ranges(self, key: str, ranges: list[tuple[int, int]]) -> list[Buffer]:
        return await gather_bounded((self._range_or_empty(key, s, n) for s, n in ranges), self.concurrency)

    # _get_suffix: the default (size, then one range) — Blob storage has no suffix range (x-ms-range
    # needs a start offset), as zarr's obstore backend notes for Azure.

    async def _size(self, key: str) -> int:
        k = self._key(key)
        props = await self._call("size", key, lambda cc: cc.get_blob_client(k).get_blob_properties())
        return int(props.size)

    async def _list(self, prefix: str) -> AsyncIterator[tuple[str, int]]:
        cc = await self.container_client()
        cut = len(self._prefix)
        try:
            async for blob in cc.list_blobs(name_starts_with=self._prefix + prefix,
                                            results_per_page=self.options.list_page_size):
                yield blob.name[cut:], int(blob.size)
        except Exception as exc:
            raise self._error(exc, "list", prefix or None) from exc

    async def _delete(self, key: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        k = self._key(key)

        async def _delete(cc: Any) -> None:
            with contextlib.suppress(ResourceNotFoundError):
                await cc.delete_blob(k)

        await self._call("delete", key, _delete)

    async def delete_prefix(self, prefix: str) -> int:
        # docstring inherited
        keys = [k async for k, _ in self.list(prefix)]
        await gather_bounded((self.delete(k) for k in keys), max(32, self.options.concurrency))
        return len(keys)

    async def _open_writer(self, key: str, fsync: bool) -> Writer:
        return AzureWriter(self, key, self._key(key))

    async def close(self) -> None:
        # docstring inherited
        await self._stack.aclose()
        self._cc = None


class AzureWriter(Writer):
    """Stages one block per ``block_size`` (at most ``concurrency`` in flight); ``close`` commits the list.

    Uncommitted blocks are invisible and Azure garbage-collects them, so ``abort`` only stops uploading.
    """

    def __init__(self, store: AzureStore, key: str, full_key: str) -> None:
        self._store, self._key, self._k = store, key, full_key
        self._buf = bytearray()
        self._ids: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(store.options.concurrency)
        self._prefix = uuid.uuid4().hex[:16]

    async def write(self, data: Buffer) -> None:
        # docstring inherited
        view, size = memoryview(data).cast("B"), self._store.block_size
        while view:
            n = min(len(view), size - len(self._buf))
            self._buf += view[:n]
            view = view[n:]
            if len(self._buf) == size:
                await self._stage(bytes(self._buf))
                self._buf = bytearray()

    async def _stage(self, block: bytes) -> None:
        await self._slots.acquire()
        for t in [t for t in self._tasks if t.done()]:
            self._tasks.discard(t)
            t.result()
        block_id = base64.b64encode(f"{self._prefix}-{len(self._ids):08d}".encode()).decode()
        self._ids.append(block_id)
        self._tasks.add(asyncio.create_task(self._upload(block_id, block)))

    async def _upload(self, block_id: str, block: bytes) -> None:
        try:
            await self._store._call("write", self._key,
                                    lambda cc: cc.get_blob_client(self._k).stage_block(block_id, block))
        finally:
            self._slots.release()

    async def close(self) -> None:
        # docstring inherited
        s = self._store
        if not self._ids:
            body = bytes(self._buf)
            await s._call("close", self._key, lambda cc: cc.upload_blob(self._k, body, overwrite=True))
            return
        if self._buf:
            await self._stage(bytes(self._buf))
            self._buf = bytearray()
        try:
            await asyncio.gather(*self._tasks)
        except BaseException:
            await self.abort()
            raise
        from azure.storage.blob import BlobBlock

        blocks = [BlobBlock(block_id=i) for i in self._ids]
        await s._call("close", self._key, lambda cc: cc.get_blob_client(self._k).commit_block_list(blocks))

    async def abort(self) -> None:
        # docstring inherited
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._buf, self._ids = bytearray(), []
