"""``s3://`` through s3dlio (MLPerf v3.0's ``storage_library: s3dlio``, the Rust library of dl-driver).

s3dlio's asyncio calls (``put_bytes_async``, ``get_async``, ``get_range_async``, ``head_async``) run on its
own Tokio runtime and return zero-copy ``BytesView`` buffers; listing, deleting and the multipart writer
are blocking calls, run in a thread. s3dlio builds one S3 client per process from ``AWS_*`` variables, so
the resolved settings are exported there first (see :mod:`pytest_dlio.storage._awsenv`); it always uses
path-style addressing. Listing returns names only: sizes come from one batched HEAD per object.
"""

from __future__ import annotations

import asyncio
import builtins
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from pytest_dlio.errors import NotFound, StorageError
from pytest_dlio.storage import _awsenv
from pytest_dlio.storage.base import Buffer, ObjectStore, Writer, gather_bounded
from pytest_dlio.storage.s3 import s3_error
from pytest_dlio.storage.settings import S3_MIN_PART, StoreOptions

T = TypeVar("T")
_CODE = re.compile(r"service error: (\w+)")
_GLOB = re.compile(r"[*?\[]")
_STAT_BATCH = 500


def _code(exc: BaseException) -> str:
    if type(exc).__name__ == "ObjectNotFoundError":
        return "NoSuchKey"
    m = _CODE.search(str(exc))
    return m.group(1) if m else ""


class S3dlioStore(ObjectStore):
    """Objects under ``s3://bucket/prefix`` through s3dlio's process-wide S3 client."""

    def __init__(self, uri: str, bucket: str, prefix: str, options: StoreOptions) -> None:
        super().__init__(uri)
        import s3dlio

        self._lib = s3dlio
        self.bucket, self._prefix, self.options = bucket, f"{prefix}/" if prefix else "", options
        self.part_size = max(S3_MIN_PART, options.part_size)
        self.concurrency = options.concurrency
        self._ready_lock = asyncio.Lock()
        self._ready = False

    # ---- plumbing ----
    def _uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._prefix}{key}"

    async def _connect(self) -> None:
        """Export the settings s3dlio reads (once) and create the bucket on an emulator."""
        if self._ready:
            return
        async with self._ready_lock:
            if self._ready:
                return
            _awsenv.export(self.uri, "s3dlio", _awsenv.aws_variables(self.options.s3, endpoint=True))
            if self.options.create_missing:
                try:
                    await asyncio.to_thread(self._lib.create_bucket, self.bucket)
                except Exception as exc:
                    if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise self._error(exc, "create_bucket", None) from exc
            self._ready = True

    def _error(self, exc: BaseException, op: str, key: str | None) -> StorageError:
        text = f"{type(exc).__name__}: {exc}"
        if "connect" in str(exc).lower() or "dispatch failure" in str(exc).lower():
            text += "; check storage_options.endpoint_url / AWS_ENDPOINT_URL and that the server is up"
        return s3_error(self.uri, op, key, _code(exc), text, self.bucket, self.options.secrets())

    async def _call(self, op: str, key: str | None, make: Callable[[], Awaitable[T]]) -> T:
        await self._connect()
        try:
            return await make()
        except StorageError:
            raise
        except Exception as exc:  # s3dlio raises RuntimeError with the S3 error code in its text
            raise self._error(exc, op, key) from exc

    async def _blocking(self, op: str, key: str | None, fn: Callable[..., T], *args: Any) -> T:
        return await self._call(op, key, lambda: asyncio.to_thread(fn, *args))

    # ---- primitives ----
    async def _put(self, key: str, data: Buffer, fsync: bool) -> None:
        if len(data) <= self.part_size:
            await self._call("put", key, lambda: self._lib.put_bytes_async(self._uri(key), data))
            return
        writer = S3dlioWriter(self, key)
        try:
            await writer.write(data)
            await writer.close()
        except BaseException:
            await writer.abort()
            raise

    async def _get(self, key: str) -> Buffer:
        view = await self._call("get", key, lambda: self._lib.get_async(self._uri(key)))
        return view.memoryview()

    async def _get_range(self, key: str, start: int, length: int) -> Buffer:
        try:
            view = await self._call(
                "get_range", key, lambda: self._lib.get_range_async(self._uri(key), start, length)
            )
        except StorageError as exc:
            if isinstance(exc.__cause__, Exception) and _code(exc.__cause__) == "InvalidRange":
                return b""  # at or past the end (or an empty object); a missing key is NotFound above
            raise
        return view.memoryview()

    async def _get_ranges(self, key: str, ranges: builtins.list[tuple[int, int]]) -> builtins.list[Buffer]:
        return await gather_bounded((self._range_or_empty(key, s, n) for s, n in ranges), self.concurrency)

    async def _size(self, key: str) -> int:
        meta = await self._call("size", key, lambda: self._lib.head_async(self._uri(key)))
        if meta is None:
            raise NotFound(self.uri, "size", key)
        return int(meta.size)

    async def _list(self, prefix: str) -> AsyncIterator[tuple[str, int]]:
        full = self._prefix + prefix
        # s3dlio lists a directory (a key ending in '/'), and reads * ? [ as a glob: list the longest
        # glob-free directory above the prefix and keep the keys that start with it.
        folder = full[: full.rfind("/") + 1]
        glob = _GLOB.search(folder)
        if glob:
            folder = folder[: folder.rfind("/", 0, glob.start()) + 1]
        root, cut = f"s3://{self.bucket}/", len(f"s3://{self.bucket}/") + len(self._prefix)
        uris = await self._blocking("list", prefix or None, self._lib.list, root + folder, True)
        uris = [u for u in uris if u.startswith(root + full)]
        for i in range(0, len(uris), _STAT_BATCH):
            batch = uris[i : i + _STAT_BATCH]
            for u, size in zip(batch, await self._sizes(batch, prefix), strict=True):
                if size is not None:
                    yield u[cut:], size

    async def _sizes(self, uris: builtins.list[str], prefix: str) -> builtins.list[int | None]:
        try:
            metas = await self._call("list", prefix or None, lambda: self._lib.stat_many_async(uris))
            return [int(m["size"]) for m in metas]
        except StorageError:  # one was deleted since the listing: look each up, skipping the missing
            heads = await gather_bounded((self._head(u, prefix) for u in uris), self.concurrency)
            return [None if m is None else int(m.size) for m in heads]

    async def _head(self, uri: str, prefix: str) -> Any:
        return await self._call("list", prefix or None, lambda: self._lib.head_async(uri))

    async def _delete(self, key: str) -> None:
        await self._blocking("delete", key, self._lib.delete, self._uri(key))

    async def delete_prefix(self, prefix: str) -> int:
        # docstring inherited
        keys = [k async for k, _ in self.list(prefix)]
        await gather_bounded((self._delete(k) for k in keys), self.concurrency)
        return len(keys)

    async def _open_writer(self, key: str, fsync: bool) -> Writer:
        await self._connect()
        return S3dlioWriter(self, key)


class S3dlioWriter(Writer):
    """Buffers one part; s3dlio's ``MultipartUploadWriter`` starts once more than one part is needed.

    Writes are copied (``copy=True``) unless they are ``bytes``: the caller may reuse its buffer as soon
    as ``write`` returns, which s3dlio's zero-copy borrow would forbid until ``close``.
    """

    def __init__(self, store: S3dlioStore, key: str) -> None:
        self._store, self._key = store, key
        self._buf = bytearray()
        self._mpu: Any = None

    async def write(self, data: Buffer) -> None:
        # docstring inherited
        s = self._store
        if self._mpu is None and len(self._buf) + len(data) <= s.part_size:
            self._buf += data
            return
        if self._mpu is None:
            self._mpu = await s._blocking(
                "open_writer",
                self._key,
                lambda: s._lib.MultipartUploadWriter(
                    s.bucket, s._prefix + self._key, part_size=s.part_size, max_in_flight=s.concurrency
                ),
            )
            if self._buf:
                head, self._buf = bytes(self._buf), bytearray()
                await s._blocking("write", self._key, self._mpu.write, head)
        if isinstance(data, bytes):
            await s._blocking("write", self._key, self._mpu.write, data)
        else:
            await s._blocking("write", self._key, lambda: self._mpu.write(data, copy=True))

    async def close(self) -> None:
        # docstring inherited
        s = self._store
        if self._mpu is None:
            body, self._buf = bytes(self._buf), bytearray()
            await s._call("close", self._key, lambda: s._lib.put_bytes_async(s._uri(self._key), body))
            return
        try:
            await s._blocking("close", self._key, self._mpu.close)
        finally:
            self._mpu = None

    async def abort(self) -> None:
        # docstring inherited
        self._buf = bytearray()
        mpu, self._mpu = self._mpu, None
        if mpu is not None:
            try:
                await asyncio.to_thread(mpu.abort)
            except Exception:  # noqa: BLE001 - best effort: nothing was committed under the key
                pass
