"""``s3://bucket/prefix``: aiobotocore, multipart for large objects, bounded retries and timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from pytest_dlio.errors import NotFound, StorageError
from pytest_dlio.storage.base import Buffer, ObjectStore, Writer, gather_bounded
from pytest_dlio.storage.settings import S3_MIN_PART, StoreOptions
from pytest_dlio.storage.stats import Truncated, exception_cause, gave_up, http_cause, retry_truncated
from pytest_dlio.storage.uri import scrub

T = TypeVar("T")
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}


class S3Store(ObjectStore):
    """Objects under ``s3://bucket/prefix``; one aiobotocore client per store (so per event loop)."""

    def __init__(self, uri: str, bucket: str, prefix: str, options: StoreOptions) -> None:
        super().__init__(uri)
        self.bucket, self._prefix, self.options = bucket, f"{prefix}/" if prefix else "", options
        self.part_size = max(S3_MIN_PART, options.part_size)
        self.concurrency = options.concurrency
        self._settings = options.s3
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._lock = asyncio.Lock()

    # ---- plumbing ----
    async def client(self) -> Any:
        """The client, created (and the bucket checked or created) on first use."""
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await self._connect()
        return self._client

    async def _connect(self) -> Any:
        from aiobotocore.config import AioConfig

        s = self._settings
        config = AioConfig(
            retries={"total_max_attempts": s.max_attempts, "mode": "standard"},
            connect_timeout=self.options.connect_timeout,
            read_timeout=self.options.timeout,
            max_pool_connections=max(16, self.options.concurrency * 2, self.options.threads * 2),
            s3={"addressing_style": "path" if s.path_style else "auto"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        ctx = _session().create_client(
            "s3",
            region_name=s.region,
            endpoint_url=s.endpoint_url,
            aws_access_key_id=s.access_key_id,
            aws_secret_access_key=s.secret_access_key,
            aws_session_token=s.session_token,
            config=config,
        )
        try:
            client = await self._stack.enter_async_context(ctx)
        except Exception as exc:
            raise self._error(exc, "connect", None) from exc
        client.meta.events.register("needs-retry.s3", _note_cause)
        client.meta.events.register("request-created.s3", self._count_retry)
        if self.options.create_missing:
            await self._ensure_bucket(client)
        return client

    def _count_retry(self, request: Any, **_: Any) -> None:
        """botocore creates a request per attempt; an attempt after the first is a retry of ``cause``."""
        context = getattr(request, "context", None) or {}
        if context.get("retries", {}).get("attempt", 1) > 1:
            self.retries.add(context.pop("dlio_retry_cause", "other"))

    async def _ensure_bucket(self, client: Any) -> None:
        from botocore.exceptions import ClientError

        try:
            await client.head_bucket(Bucket=self.bucket)
        except ClientError:
            try:
                await client.create_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise self._error(exc, "create_bucket", None) from exc

    def _key(self, key: str) -> str:
        return self._prefix + key

    def _error(
        self, exc: BaseException, op: str, key: str | None, elapsed: float | None = None
    ) -> StorageError:
        code = _code(exc)
        text = f"{code}: {exc}" if code else f"{type(exc).__name__}: {exc}"
        if elapsed is not None:
            o = self.options
            text += "; " + gave_up(
                _attempts(exc),
                elapsed,
                "s3_max_attempts",
                self._settings.max_attempts,
                o.connect_timeout,
                o.timeout,
            )
        if type(exc).__name__ in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"):
            text += "; check storage_options.endpoint_url / AWS_ENDPOINT_URL and that the server is up"
        return s3_error(self.uri, op, key, code, text, self.bucket, self.options.secrets())

    async def _call(self, op: str, key: str | None, fn: Callable[[Any], Awaitable[T]]) -> T:
        client = await self.client()
        t0 = time.monotonic()
        try:
            return await fn(client)
        except StorageError:
            raise
        except Exception as exc:  # botocore/aiohttp errors of every kind
            raise self._error(exc, op, key, time.monotonic() - t0) from exc

    # ---- primitives ----
    async def _put(self, key: str, data: Buffer, fsync: bool) -> None:
        k = self._key(key)
        if len(data) <= self.part_size:
            await self._call("put", key, lambda c: c.put_object(Bucket=self.bucket, Key=k, Body=bytes(data)))
            return
        writer = S3Writer(self, key, k)
        try:
            await writer.write(data)
            await writer.close()
        except BaseException:
            await writer.abort()
            raise

    async def _get(self, key: str) -> Buffer:
        return await self._read("get", key, None)

    async def _get_range(self, key: str, start: int, length: int) -> Buffer:
        return await self._read("get_range", key, f"bytes={start}-{start + length - 1}", start, length)

    async def _get_ranges(self, key: str, ranges: list[tuple[int, int]]) -> list[Buffer]:
        return await gather_bounded((self._range_or_empty(key, s, n) for s, n in ranges), self.concurrency)

    async def _get_suffix(self, key: str, n: int) -> Buffer:
        return await self._read("get_suffix", key, f"bytes=-{n}", -n)

    async def _read(
        self, op: str, key: str, byte_range: str | None, start: int = 0, length: int | None = None
    ) -> Buffer:
        """One GET; ``byte_range`` is an HTTP Range (``start`` < 0: a suffix of ``-start`` bytes)."""
        k = self._key(key)
        extra = {"Range": byte_range} if byte_range else {}

        async def _get(c: Any) -> bytes:
            try:
                r = await c.get_object(Bucket=self.bucket, Key=k, **extra)
            except Exception as exc:
                if byte_range and _code(exc) == "InvalidRange":  # past the end of (or an) empty object
                    return b""
                raise
            expected = int(r.get("ContentLength", -1))
            try:
                async with r["Body"] as body:
                    data = await body.read()
            except Exception as exc:  # the connection closed mid-body (aiohttp/botocore streaming errors)
                raise Truncated(f"the body broke off ({type(exc).__name__}: {exc})") from exc
            if 0 <= expected != len(data):
                raise Truncated(f"got {len(data):,} of {expected:,} bytes (Content-Length)")
            if not byte_range or "ContentRange" in r:
                return data
            # A server that ignores Range returns the whole object; cut it here.
            return data[start:] if start < 0 else data[start : start + (length or 0)]

        return await self._call(
            op, key, lambda c: retry_truncated(lambda: _get(c), self._settings.max_attempts, self.retries.add)
        )

    async def _size(self, key: str) -> int:
        k = self._key(key)
        r = await self._call("size", key, lambda c: c.head_object(Bucket=self.bucket, Key=k))
        return int(r["ContentLength"])

    async def _list(self, prefix: str) -> AsyncIterator[tuple[str, int]]:
        client = await self.client()
        cut = len(self._prefix)
        page_size = self.options.list_page_size
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._prefix + prefix, PaginationConfig={"PageSize": page_size}
        )
        t0 = time.monotonic()  # the time of the request in flight, not the caller's between pages
        try:
            async for page in pages:
                for obj in page.get("Contents", ()):
                    yield obj["Key"][cut:], int(obj["Size"])
                t0 = time.monotonic()
        except Exception as exc:
            raise self._error(exc, "list", prefix or None, time.monotonic() - t0) from exc

    async def _delete(self, key: str) -> None:
        k = self._key(key)
        await self._call("delete", key, lambda c: c.delete_object(Bucket=self.bucket, Key=k))

    def _delete_batch(self, client: Any, *, batch: dict[str, Any]) -> Any:
        return client.delete_objects(Bucket=self.bucket, Delete=batch)

    async def delete_prefix(self, prefix: str) -> int:
        # docstring inherited
        keys = [self._prefix + k async for k, _ in self.list(prefix)]
        for i in range(0, len(keys), 1000):
            batch: dict[str, Any] = {"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True}
            await self._call(
                "delete_prefix", prefix or None, functools.partial(self._delete_batch, batch=batch)
            )
        return len(keys)

    async def _open_writer(self, key: str, fsync: bool) -> Writer:
        return S3Writer(self, key, self._key(key))

    async def close(self) -> None:
        # docstring inherited
        await self._stack.aclose()
        self._client = None


_SESSION: Any = None


def _session() -> Any:
    """One aiobotocore session per process: it caches the parsed service models (~0.3 s per client)."""
    global _SESSION
    if _SESSION is None:
        from aiobotocore.session import get_session

        _SESSION = get_session()
    return _SESSION


def _note_cause(
    request_dict: dict[str, Any],
    response: Any = None,
    caught_exception: BaseException | None = None,
    attempts: int = 1,
    **_: Any,
) -> None:
    """Remember why an attempt failed (a retry, if botocore makes one, is counted under this cause)."""
    context = request_dict.get("context", {})
    if caught_exception is not None:
        context["dlio_retry_cause"] = exception_cause(caught_exception)
        with contextlib.suppress(AttributeError, TypeError):
            caught_exception.dlio_attempts = attempts  # type: ignore[attr-defined]
    elif response is not None and getattr(response[0], "status_code", 200) >= 400:
        context["dlio_retry_cause"] = http_cause(response[0].status_code)
    else:
        context.pop("dlio_retry_cause", None)


def _attempts(exc: BaseException) -> int | None:
    meta = (getattr(exc, "response", None) or {}).get("ResponseMetadata", {})
    if "RetryAttempts" in meta:
        return int(meta["RetryAttempts"]) + 1
    return getattr(exc, "dlio_attempts", None)


def s3_error(
    uri: str, op: str, key: str | None, code: str, text: str, bucket: str, secrets: tuple[str, ...]
) -> StorageError:
    """An S3 error ``code`` (NoSuchKey, AccessDenied, ...) as NotFound or a StorageError saying what to fix.

    Shared by every S3 client library's backend; ``text`` (scrubbed of ``secrets``) is the fallback reason.
    """
    if code in _MISSING_CODES:
        return NotFound(uri, op, key)
    if code == "NoSuchBucket":
        return StorageError(uri, op, key, f"bucket {bucket!r} does not exist; create it or fix the URI")
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "Forbidden"):
        return StorageError(
            uri,
            op,
            key,
            f"{code}: check the credentials (storage_options "
            "access_key_id/secret_access_key or AWS_* env vars)",
        )
    return StorageError(uri, op, key, scrub(text, secrets))


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


class S3Writer(Writer):
    """Buffers one part; a multipart upload starts once more than one part is needed.

    At most ``concurrency`` parts are in flight, so memory stays below (concurrency + 1) × part size.
    """

    def __init__(self, store: S3Store, key: str, full_key: str) -> None:
        self._store, self._key, self._k = store, key, full_key
        self._buf = bytearray()
        self._upload_id: str | None = None
        self._parts: dict[int, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(store.options.concurrency)
        self._next = 1

    async def write(self, data: Buffer) -> None:
        # docstring inherited
        view, size = memoryview(data).cast("B"), self._store.part_size
        while view:
            if not self._buf and len(view) >= size:
                await self._send(bytes(view[:size]))  # whole part straight from the caller's buffer
                view = view[size:]
                continue
            n = min(len(view), size - len(self._buf))
            self._buf += view[:n]
            view = view[n:]
            if len(self._buf) == size:
                await self._send(bytes(self._buf))
                self._buf = bytearray()

    async def _send(self, part: bytes) -> None:
        s = self._store
        if self._upload_id is None:
            r = await s._call(
                "open_writer", self._key, lambda c: c.create_multipart_upload(Bucket=s.bucket, Key=self._k)
            )
            self._upload_id = r["UploadId"]
        await self._slots.acquire()
        for t in [t for t in self._tasks if t.done()]:
            self._tasks.discard(t)
            t.result()
        number, self._next = self._next, self._next + 1
        task = asyncio.create_task(self._upload(number, part))
        self._tasks.add(task)

    async def _upload(self, number: int, part: bytes) -> None:
        s = self._store
        try:
            r = await s._call(
                "write",
                self._key,
                lambda c: c.upload_part(
                    Bucket=s.bucket, Key=self._k, UploadId=self._upload_id, PartNumber=number, Body=part
                ),
            )
            self._parts[number] = r["ETag"]
        finally:
            self._slots.release()

    async def close(self) -> None:
        # docstring inherited
        s = self._store
        if self._upload_id is None:
            body = bytes(self._buf)
            await s._call("close", self._key, lambda c: c.put_object(Bucket=s.bucket, Key=self._k, Body=body))
            return
        if self._buf:
            await self._send(bytes(self._buf))
            self._buf = bytearray()
        try:
            await asyncio.gather(*self._tasks)
        except BaseException:
            await self.abort()
            raise
        parts = {"Parts": [{"PartNumber": n, "ETag": e} for n, e in sorted(self._parts.items())]}
        await s._call(
            "close",
            self._key,
            lambda c: c.complete_multipart_upload(
                Bucket=s.bucket, Key=self._k, UploadId=self._upload_id, MultipartUpload=parts
            ),
        )

    async def abort(self) -> None:
        # docstring inherited
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._buf = bytearray()
        if self._upload_id is not None:
            s, upload_id, self._upload_id = self._store, self._upload_id, None
            with contextlib.suppress(StorageError):
                await s._call(
                    "abort",
                    self._key,
                    lambda c: c.abort_multipart_upload(Bucket=s.bucket, Key=self._k, UploadId=upload_id),
                )
