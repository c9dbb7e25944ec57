"""``s3://`` through s3torchconnector's client (MLPerf Storage v3.0's ``storage_library: s3torchconnector``).

Only the ``s3torchconnectorclient`` wheel is used — the AWS CRT (Mountpoint) client under
s3torchconnector — so torch is not needed. It takes the endpoint, region and path style per client; the
CRT reads credentials from the ``AWS_*`` variables, which are exported first (see
:mod:`pytest_dlio.storage._awsenv`). Its calls block: each runs on a thread pool. Its streaming upload has
no abort: an aborted writer is dropped unclosed, so its multipart upload is never completed.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from typing import Any

from pytest_dlio.errors import NotFound, StorageError
from pytest_dlio.storage import _awsenv
from pytest_dlio.storage._sdk import BlockingSdkStore
from pytest_dlio.storage.base import Buffer, Writer, gather_bounded
from pytest_dlio.storage.s3 import s3_error

_MISSING = ("The object was not found", "The key does not exist", "NoSuchKey")


class S3TorchStore(BlockingSdkStore):
    """Objects under ``s3://bucket/prefix`` through one ``MountpointS3Client`` per store."""

    thread_name = "dlio-crt"

    def _connect(self) -> Any:
        from s3torchconnectorclient._mountpoint_s3_client import MountpointS3Client

        s = self.options.s3
        _awsenv.export(self.uri, "s3torchconnector", _awsenv.aws_variables(s, endpoint=False))
        client = MountpointS3Client(
            s.region,
            user_agent_prefix="pytest-dlio",
            part_size=self.part_size,
            endpoint=s.endpoint_url,
            force_path_style=s.path_style,
            max_attempts=s.max_attempts,
        )
        if self.options.create_missing:
            self._create_bucket()
        return client

    def _create_bucket(self) -> None:
        """The client has no CreateBucket: the embedded moto's bucket is made with botocore (the s3 extra)."""
        import botocore.session

        s = self.options.s3
        c = botocore.session.get_session().create_client(
            "s3",
            region_name=s.region,
            endpoint_url=s.endpoint_url,
            aws_access_key_id=s.access_key_id,
            aws_secret_access_key=s.secret_access_key,
        )
        try:
            c.create_bucket(Bucket=self.bucket)
        except c.exceptions.BucketAlreadyOwnedByYou:
            pass

    def _error(self, exc: BaseException, op: str, key: str | None) -> StorageError:
        text = f"{type(exc).__name__}: {exc}"
        code = "NoSuchKey" if any(m in str(exc) for m in _MISSING) else ""
        for c in (
            "NoSuchBucket",
            "InvalidRange",
            "AccessDenied",
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
        ):
            if c in str(exc):
                code = c
        return s3_error(self.uri, op, key, code, text, self.bucket, self.options.secrets())

    # ---- primitives ----
    async def _put(self, key: str, data: Buffer, fsync: bool) -> None:
        k = self._key(key)

        body = data if isinstance(data, bytes) else bytes(data)  # the CRT stream takes bytes only

        def put(c: Any) -> None:
            stream = c.put_object(self.bucket, k)
            stream.write(body)
            stream.close()

        await self._run("put", key, put)

    async def _get(self, key: str) -> Buffer:
        k = self._key(key)
        return await self._run("get", key, lambda c: b"".join(c.get_object(self.bucket, k)))

    async def _get_range(self, key: str, start: int, length: int) -> Buffer:
        k = self._key(key)
        try:
            return await self._run(
                "get_range",
                key,
                lambda c: b"".join(c.get_object(self.bucket, k, start=start, end=start + length)),
            )
        except StorageError as exc:
            if "InvalidRange" in str(exc.__cause__):
                return b""  # at or past the end, or an empty object
            raise

    async def _size(self, key: str) -> int:
        k = self._key(key)
        return int(await self._run("size", key, lambda c: c.head_object(self.bucket, k).size))

    async def _list(self, prefix: str) -> AsyncIterator[tuple[str, int]]:
        full, cut = self._prefix + prefix, len(self._prefix)
        page_size = self.options.list_page_size

        def listing(c: Any) -> builtins.list[tuple[str, int]]:
            return [
                (o.key[cut:], int(o.size))
                for page in c.list_objects(self.bucket, full, "", page_size)
                for o in page.object_info
            ]

        for item in await self._run("list", prefix or None, listing):
            yield item

    async def _delete(self, key: str) -> None:
        k = self._key(key)
        try:
            await self._run("delete", key, lambda c: c.delete_object(self.bucket, k))
        except NotFound:
            pass

    async def delete_prefix(self, prefix: str) -> int:
        # docstring inherited
        keys = [k async for k, _ in self.list(prefix)]
        await gather_bounded((self._delete(k) for k in keys), self.concurrency)
        return len(keys)

    async def _open_writer(self, key: str, fsync: bool) -> Writer:
        return S3TorchWriter(self, key)


class S3TorchWriter(Writer):
    """The CRT's ``PutObjectStream``: parts upload as they fill; ``close`` completes the object."""

    def __init__(self, store: S3TorchStore, key: str) -> None:
        self._store, self._key = store, key
        self._stream: Any = None

    async def _open(self) -> Any:
        if self._stream is None:
            s, k = self._store, self._store._key(self._key)
            self._stream = await s._run("open_writer", self._key, lambda c: c.put_object(s.bucket, k))
        return self._stream

    async def write(self, data: Buffer) -> None:
        # docstring inherited
        stream = await self._open()
        chunk = bytes(data)  # the caller may reuse its buffer once write returns
        await self._store._run("write", self._key, lambda c: stream.write(chunk))

    async def close(self) -> None:
        # docstring inherited
        stream = await self._open()
        await self._store._run("close", self._key, lambda c: stream.close())
        self._stream = None

    async def abort(self) -> None:
        # docstring inherited
        self._stream = None  # dropped unclosed: the CRT never completes the upload
