"""``az://container/prefix`` and ``az://account/container/prefix``: azure-storage-blob aio, staged blocks."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pytest_dlio.errors import NotFound, StorageError
from pytest_dlio.storage.base import Buffer, ObjectStore, Writer, gather_bounded
from pytest_dlio.storage.settings import StoreOptions
from pytest_dlio.storage.stats import (
    RetryCounter,
    Truncated,
    exception_cause,
    gave_up,
    http_cause,
    retry_truncated,
)
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
        kw: dict[str, Any] = {
            "max_single_put_size": self.block_size,
            "max_block_size": self.block_size,
            "max_single_get_size": self.block_size,
            "max_chunk_get_size": self.block_size,
            "connection_timeout": o.connect_timeout,
            "read_timeout": o.timeout,
            "retry_policy": _counting_retry(s.max_attempts, self.retries),
        }
        _count_truncations()
        if s.api_version:
            kw["api_version"] = s.api_version
        if s.connection_string:
            return BlobServiceClient.from_connection_string(s.connection_string, **kw)
        if not self._account:
            raise StorageError(
                self.uri,
                "connect",
                reason="no Azure account; set AZURE_STORAGE_CONNECTION_STRING "
                "or AZURE_STORAGE_ACCOUNT (+ AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN), or "
                "use az://account/container/prefix",
            )
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

    def _error(
        self, exc: BaseException, op: str, key: str | None, elapsed: float | None = None
    ) -> StorageError:
        code = str(getattr(exc, "error_code", "") or "")
        status = getattr(exc, "status_code", None)
        if code == "ContainerNotFound":
            return StorageError(
                self.uri, op, key, f"container {self.container!r} does not exist; create it or fix the URI"
            )
        if code == "BlobNotFound" or (status == 404 and not code):
            return NotFound(self.uri, op, key)
        if status in (401, 403) or code in ("AuthenticationFailed", "AuthorizationFailure"):
            return StorageError(
                self.uri,
                op,
                key,
                f"{code or status}: check the credentials (AZURE_STORAGE_* env vars or storage_options)",
            )
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        text = f"{code}: {first}" if code else f"{type(exc).__name__}: {first}"
        if elapsed is not None:
            o = self.options
            text += "; " + gave_up(
                getattr(exc, "dlio_attempts", None),
                elapsed,
                "max_attempts",
                self._settings.max_attempts,
                o.connect_timeout,
                o.timeout,
            )
        if type(exc).__name__ in ("ServiceRequestError", "ServiceRequestTimeoutError"):
            text += (
                "; check the connection string's BlobEndpoint / storage_options.account_url and that "
                "the server is up"
            )
        return StorageError(self.uri, op, key, scrub(text, self.options.secrets()))

    async def _call(self, op: str, key: str | None, fn: Callable[[Any], Awaitable[T]]) -> T:
        t0 = time.monotonic()
        call = _Call(self.retries)
        token = _CALL.set(call)
        try:
            cc = await self.container_client()
            return await fn(cc)
        except StorageError:
            raise
        except Exception as exc:  # azure-core/aiohttp errors of every kind
            with contextlib.suppress(AttributeError, TypeError):
                exc.dlio_attempts = getattr(exc, "dlio_attempts", None) or call.attempts  # type: ignore[attr-defined]
            raise self._error(exc, op, key, time.monotonic() - t0) from exc
        finally:
            _CALL.reset(token)

    async def _download(self, cc: Any, key: str, **kw: Any) -> bytes:
        """One download, checked against the length the service announced; a short body is retried."""

        async def once() -> bytes:
            try:
                stream = await cc.download_blob(key, max_concurrency=self.options.concurrency, **kw)
                data = await stream.readall()
            except Exception as exc:
                if exception_cause(exc) == "truncated":  # azure-storage-blob's own re-reads ran out
                    cut = Truncated(f"the body broke off ({type(exc).__name__})")
                    cut.counted = True  # type: ignore[attr-defined]  # the log handler counted it
                    raise cut from exc
                raise
            expected = getattr(stream, "size", None)  # the bytes the service announced for this download
            if expected is not None and len(data) != expected:
                raise Truncated(f"got {len(data):,} of {expected:,} bytes")
            return bytes(data)

        return await retry_truncated(once, self._settings.max_attempts, self.retries.add)

    # ---- primitives ----
    async def _put(self, key: str, data: Buffer, fsync: bool) -> None:
        k = self._key(key)
        body = data if isinstance(data, bytes) else bytes(data)
        await self._call(
            "put",
            key,
            lambda cc: cc.upload_blob(k, body, overwrite=True, max_concurrency=self.options.concurrency),
        )

    async def _get(self, key: str) -> Buffer:
        k = self._key(key)

        return await self._call("get", key, lambda cc: self._download(cc, k))

    async def _get_range(self, key: str, start: int, length: int) -> Buffer:
        k = self._key(key)

        async def _get(cc: Any) -> bytes:
            try:
                return await self._download(cc, k, offset=start, length=length)
            except Exception as exc:
                if (
                    getattr(exc, "error_code", None) == "InvalidRange"
                    or getattr(exc, "status_code", 0) == 416
                ):
                    return b""
                raise

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
        t0 = time.monotonic()  # the time of the request in flight, not the caller's between names
        try:
            async for blob in cc.list_blobs(
                name_starts_with=self._prefix + prefix, results_per_page=self.options.list_page_size
            ):
                yield blob.name[cut:], int(blob.size)
                t0 = time.monotonic()
        except Exception as exc:
            raise self._error(exc, "list", prefix or None, time.monotonic() - t0) from exc

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


@dataclass
class _Call:
    """One store call in flight: its store's retry counter, and the attempts made when it gave up."""

    retries: RetryCounter
    attempts: int | None = None


#: The store call running in this task (azure-core logs truncated bodies; the retry policy gives up).
_CALL: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("dlio_azure_call", default=None)


class _TruncationCounter(logging.Handler):
    """azure-core logs "Incomplete download." for each body that broke off, then azure-storage-blob reads
    it again (up to 3 times): count each as a ``truncated`` retry of the store running in this task."""

    def emit(self, record: logging.LogRecord) -> None:
        call = _CALL.get()
        if call is not None and record.getMessage() == "Incomplete download.":
            call.retries.add("truncated")


def _count_truncations() -> None:
    log = logging.getLogger("azure.core.pipeline.transport._aiohttp")
    if not any(isinstance(h, _TruncationCounter) for h in log.handlers):
        log.addHandler(_TruncationCounter(logging.WARNING))


def _counting_retry(max_attempts: int, counter: RetryCounter) -> Any:
    """azure-storage-blob's retry policy with botocore-like backoffs (0.25 s doubling to at most 8 s, ±50 %),
    at most ``max_attempts`` attempts in all, counting each retry it makes by cause."""
    from azure.storage.blob.aio import ExponentialRetry

    class CountingRetry(ExponentialRetry):
        def get_backoff_time(self, settings: Any) -> float:
            return min(8.0, 0.25 * 2 ** max(0, settings["count"] - 1)) * random.uniform(0.5, 1.5)

        def increment(self, settings: Any, request: Any, response: Any = None, error: Any = None) -> bool:
            again = bool(super().increment(settings, request, response=response, error=error))
            if again:
                counter.add(
                    exception_cause(error)
                    if error is not None
                    else http_cause(getattr(response, "status_code", None))
                )
            elif (call := _CALL.get()) is not None:
                call.attempts = settings["count"] + 1
            return again

    retries = max(0, max_attempts - 1)
    return CountingRetry(retry_total=retries, retry_connect=retries, retry_read=retries, retry_status=retries)


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
            await self._store._call(
                "write", self._key, lambda cc: cc.get_blob_client(self._k).stage_block(block_id, block)
            )
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
