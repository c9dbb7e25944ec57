"""``s3://`` through the MinIO Python SDK (MLPerf Storage v3.0's ``storage_library: minio``).

The SDK is synchronous (urllib3): every call runs on a thread pool of ``concurrency`` threads with a
connection pool of the same size. Streaming uploads feed ``put_object(length=-1)`` from a bounded queue,
so the SDK cuts the parts, uploads them as a multipart upload and aborts it when the writer is aborted.
"""

from __future__ import annotations

import asyncio
import builtins
import queue
from collections.abc import AsyncIterator
from concurrent.futures import Future
from typing import Any
from urllib.parse import urlsplit

from pytest_dlio.errors import StorageError
from pytest_dlio.storage._sdk import BlockingSdkStore
from pytest_dlio.storage.base import Buffer, Writer
from pytest_dlio.storage.s3 import s3_error


class MinioStore(BlockingSdkStore):
    """Objects under ``s3://bucket/prefix`` through one ``minio.Minio`` client per store."""

    thread_name = "dlio-minio"
    extra_threads = 1  # a streaming writer's upload holds a thread while it waits for chunks

    def _connect(self) -> Any:
        import urllib3
        from minio import Minio

        s = self.options.s3
        url = urlsplit(s.endpoint_url or "https://s3.amazonaws.com")
        http = urllib3.PoolManager(
            maxsize=self._threads + 1,
            timeout=urllib3.Timeout(connect=self.options.timeout, read=self.options.timeout),
            retries=urllib3.Retry(
                total=max(0, s.max_attempts - 1), backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)
            ),
        )
        client = Minio(
            url.netloc,
            access_key=s.access_key_id,
            secret_key=s.secret_access_key,
            session_token=s.session_token,
            secure=url.scheme == "https",
            region=s.region,
            http_client=http,
        )
        if self.options.create_missing and not client.bucket_exists(self.bucket):
            client.make_bucket(self.bucket)
        return client

    def _error(self, exc: BaseException, op: str, key: str | None) -> StorageError:
        code = str(getattr(exc, "code", "") or "")
        text = f"{code}: {exc}" if code else f"{type(exc).__name__}: {exc}"
        if type(exc).__name__ in ("MaxRetryError", "NewConnectionError", "ProtocolError", "TimeoutError"):
            text += "; check storage_options.endpoint_url / AWS_ENDPOINT_URL and that the server is up"
        return s3_error(self.uri, op, key, code, text, self.bucket, self.options.secrets())

    # ---- primitives ----
    async def _put(self, key: str, data: Buffer, fsync: bool) -> None:
        import io

        k, n = self._key(key), len(data)
        await self._run(
            "put", key, lambda c: c.put_object(self.bucket, k, io.BytesIO(data), n, part_size=self.part_size)
        )

    async def _get(self, key: str) -> Buffer:
        return await self._read("get", key, 0, 0)

    async def _get_range(self, key: str, start: int, length: int) -> Buffer:
        try:
            return await self._read("get_range", key, start, length)
        except StorageError as exc:
            if getattr(exc.__cause__, "code", None) == "InvalidRange":
                return b""  # at or past the end, or an empty object; a missing key is NotFound
            raise

    async def _read(self, op: str, key: str, offset: int, length: int) -> bytes:
        k = self._key(key)

        def read(c: Any) -> bytes:
            r = c.get_object(self.bucket, k, offset=offset, length=length)
            try:
                return bytes(r.data)
            finally:
                r.close()
                r.release_conn()

        return await self._run(op, key, read)

    async def _size(self, key: str) -> int:
        k = self._key(key)
        return int(await self._run("size", key, lambda c: c.stat_object(self.bucket, k).size))

    async def _list(self, prefix: str) -> AsyncIterator[tuple[str, int]]:
        full, cut = self._prefix + prefix, len(self._prefix)

        def page(c: Any) -> builtins.list[tuple[str, int]]:
            return [
                (o.object_name[cut:], int(o.size)) for o in c.list_objects(self.bucket, full, recursive=True)
            ]

        for item in await self._run("list", prefix or None, page):
            yield item

    async def _delete(self, key: str) -> None:
        k = self._key(key)
        await self._run("delete", key, lambda c: c.remove_object(self.bucket, k))

    async def delete_prefix(self, prefix: str) -> int:
        # docstring inherited
        from minio.deleteobjects import DeleteObject

        keys = [self._prefix + k async for k, _ in self.list(prefix)]

        def remove(c: Any) -> builtins.list[Any]:  # batches of 1000; the iterator yields failures only
            return list(c.remove_objects(self.bucket, (DeleteObject(k) for k in keys)))

        failed = await self._run("delete_prefix", prefix or None, remove)
        if failed:
            raise StorageError(
                self.uri,
                "delete_prefix",
                prefix or None,
                f"{len(failed)} of {len(keys)} deletes failed, e.g. {failed[0]}",
            )
        return len(keys)

    async def _open_writer(self, key: str, fsync: bool) -> Writer:
        return MinioWriter(self, key)


class _Abort(Exception):
    """Raised inside the SDK's read to make it abort the multipart upload."""


class _QueueStream:
    """A file-like ``read`` over chunks put on a bounded queue (``None``: end, ``_Abort``: abort)."""

    def __init__(self, depth: int) -> None:
        self.chunks: queue.Queue[bytes | None | type[_Abort]] = queue.Queue(maxsize=depth)
        self._head = memoryview(b"")

    def read(self, size: int = -1) -> bytes:
        while not self._head:
            chunk = self.chunks.get()
            if chunk is None:
                return b""
            if chunk is _Abort:
                raise _Abort()
            self._head = memoryview(chunk)  # type: ignore[arg-type]
        n = len(self._head) if size < 0 else min(size, len(self._head))
        out, self._head = bytes(self._head[:n]), self._head[n:]
        return out


class MinioWriter(Writer):
    """``put_object(length=-1)`` on a pool thread, fed chunk by chunk (at most 4 chunks queued)."""

    def __init__(self, store: MinioStore, key: str) -> None:
        self._store, self._key = store, key
        self._stream = _QueueStream(4)
        self._upload: Future[Any] | None = None

    def _start(self) -> None:
        s, k = self._store, self._store._key(self._key)
        client = s._client
        self._upload = s._pool.submit(
            lambda: client.put_object(s.bucket, k, self._stream, -1, part_size=s.part_size)
        )

    async def _put_chunk(self, chunk: bytes | None | type[_Abort]) -> None:
        if self._upload is None:
            await self._store._run("open_writer", self._key, lambda c: None)  # connects
            self._start()
        await asyncio.to_thread(self._stream.chunks.put, chunk)

    async def write(self, data: Buffer) -> None:
        # docstring inherited
        if len(data):
            await self._put_chunk(bytes(data))
            if self._upload is not None and self._upload.done():
                await self._finish("write")  # the upload failed early: say why now

    async def _finish(self, op: str) -> None:
        assert self._upload is not None
        try:
            await asyncio.wrap_future(self._upload)
        except StorageError:
            raise
        except Exception as exc:
            raise self._store._error(exc, op, self._key) from exc

    async def close(self) -> None:
        # docstring inherited
        await self._put_chunk(None)
        await self._finish("close")

    async def abort(self) -> None:
        # docstring inherited
        if self._upload is None or self._upload.done():
            return
        await asyncio.to_thread(self._stream.chunks.put, _Abort)
        try:
            await asyncio.wrap_future(self._upload)
        except Exception:  # noqa: BLE001 - _Abort (or the failure that led here): nothing was committed
            pass
