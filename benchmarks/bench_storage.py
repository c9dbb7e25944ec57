"""Our ObjectStore get/put throughput per backend divided by a raw loop over the same client library.

    python benchmarks/bench_storage.py --backends file,direct,s3,az --size 4MiB --count 64 --concurrency 8
    python benchmarks/bench_storage.py --backends s3,s3dlio,minio,s3torchconnector   # storage_library

``s3dlio``, ``minio`` and ``s3torchconnector`` are s3:// stores with that ``storage_library``; each is
compared with a raw loop of the same library and, in the last two columns, with a raw aiobotocore loop
on the same endpoint.

Each round runs ours and the raw baseline back to back in the same process, on the same target; the
best of ``--rounds`` is kept for each. S3 and Azure use the embedded moto/Azurite unless
``--s3-uri``/``--az-uri`` point elsewhere (with credentials from the usual env vars).
"""

from __future__ import annotations

import argparse
import asyncio
import mmap
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from pytest_dlio.config.model import StorageConfig
from pytest_dlio.storage.base import ObjectStore
from pytest_dlio.storage.session import StorageSession
from pytest_dlio.storage.settings import StoreOptions

Op = Callable[[int], Awaitable[Any]]


def parse_size(text: str) -> int:
    """``4MiB``, ``512KiB``, ``1048576``."""
    units = {"kib": 2**10, "mib": 2**20, "gib": 2**30, "kb": 10**3, "mb": 10**6, "b": 1}
    low = text.strip().lower()
    for unit, mult in units.items():
        if low.endswith(unit):
            return int(float(low[: -len(unit)]) * mult)
    return int(low)


async def timed(op: Op, count: int, concurrency: int) -> float:
    """Seconds to run ``op(i)`` for i < count with at most ``concurrency`` in flight."""
    slots = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with slots:
            await op(i)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return time.perf_counter() - t0


# ---- raw baselines: the same client library, no pytest-dlio code ----
class RawFile:
    """Plain open/write and open/read on a thread pool of the same size. O_DIRECT uses private mappings
    with huge pages (O_DIRECT pins every page of the buffer for the DMA: 4 KiB pages cost ~5x here): a
    put stages through one reused per thread, a get reads into a fresh one, since get's bytes are the
    caller's to keep (as ``f.read()``'s are)."""

    def __init__(self, root: Path, threads: int, direct: bool = False) -> None:
        self.root, self.direct = root, direct
        self.pool = ThreadPoolExecutor(threads)
        self._bufs = threading.local()
        root.mkdir(parents=True, exist_ok=True)

    def _aligned(self, n: int) -> mmap.mmap:
        size = -(-n // 4096) * 4096
        buf: mmap.mmap | None = getattr(self._bufs, "buf", None)
        if buf is None or len(buf) < size:
            buf = self._bufs.buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            if hasattr(mmap, "MADV_HUGEPAGE"):  # O_DIRECT pins the buffer's pages: 4 KiB pages cost ~5x here
                buf.madvise(mmap.MADV_HUGEPAGE)
        return buf

    def _put(self, i: int, data: bytes) -> None:
        if self.direct:
            n = len(data)
            buf = self._aligned(n)
            buf[:n] = data
            fd = os.open(self.root / f"raw{i}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT)
            try:
                os.write(fd, memoryview(buf)[: -(-n // 4096) * 4096])
                os.ftruncate(fd, n)
            finally:
                os.close(fd)
        else:
            with open(self.root / f"raw{i}", "wb") as f:
                f.write(data)

    def _get(self, i: int) -> Any:
        if self.direct:
            fd = os.open(self.root / f"raw{i}", os.O_RDONLY | os.O_DIRECT)
            try:
                size = os.fstat(fd).st_size
                # a buffer of its own, as get returns and f.read() gives: a fresh huge-page mapping
                buf = mmap.mmap(-1, -(-size // 4096) * 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
                if hasattr(mmap, "MADV_HUGEPAGE"):
                    buf.madvise(mmap.MADV_HUGEPAGE)
                os.preadv(fd, [buf], 0)
                return memoryview(buf)[:size]
            finally:
                os.close(fd)
        with open(self.root / f"raw{i}", "rb") as f:
            return f.read()

    async def put(self, i: int, data: bytes) -> None:
        await asyncio.get_running_loop().run_in_executor(self.pool, self._put, i, data)

    async def get(self, i: int) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, self._get, i)

    async def close(self) -> None:
        self.pool.shutdown()


class RawS3:
    """aiobotocore put_object/get_object with the same endpoint and credentials."""

    def __init__(self, opts: StoreOptions, bucket: str, concurrency: int) -> None:
        self.opts, self.bucket, self.concurrency = opts, bucket, concurrency

    async def open(self) -> RawS3:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        o = self.opts.s3
        self._ctx = get_session().create_client(
            "s3",
            endpoint_url=o.endpoint_url,
            region_name=o.region,
            aws_access_key_id=o.access_key_id,
            aws_secret_access_key=o.secret_access_key,
            config=AioConfig(
                max_pool_connections=max(16, 2 * self.concurrency), s3={"addressing_style": "path"}
            ),
        )
        self.client = await self._ctx.__aenter__()
        return self

    async def put(self, i: int, data: bytes) -> None:
        await self.client.put_object(Bucket=self.bucket, Key=f"raw/{i}", Body=data)

    async def get(self, i: int) -> bytes:
        return await self.get_key(f"raw/{i}")

    async def get_key(self, key: str) -> bytes:
        r = await self.client.get_object(Bucket=self.bucket, Key=key)
        async with r["Body"] as body:
            return await body.read()

    async def close(self) -> None:
        await self._ctx.__aexit__(None, None, None)


class RawAzure:
    """azure-storage-blob aio upload_blob/download_blob with the same connection string."""

    def __init__(self, opts: StoreOptions, container: str) -> None:
        self.opts, self.container = opts, container

    async def open(self) -> RawAzure:
        from azure.storage.blob.aio import BlobServiceClient

        self.service = BlobServiceClient.from_connection_string(self.opts.azure.connection_string)
        self.cc = self.service.get_container_client(self.container)
        return self

    async def put(self, i: int, data: bytes) -> None:
        await self.cc.upload_blob(f"raw/{i}", data, overwrite=True)

    async def get(self, i: int) -> bytes:
        return await self.get_key(f"raw/{i}")

    async def get_key(self, key: str) -> bytes:
        return await (await self.cc.download_blob(key)).readall()

    async def close(self) -> None:
        await self.service.close()


class RawS3dlio:
    """s3dlio put_bytes_async/get_async (its own Tokio runtime, zero-copy BytesView)."""

    def __init__(self, bucket: str) -> None:
        import s3dlio

        self.lib, self.bucket = s3dlio, bucket

    async def put(self, i: int, data: bytes) -> None:
        await self.lib.put_bytes_async(f"s3://{self.bucket}/raw/{i}", data)

    async def get(self, i: int) -> Any:
        return (await self.lib.get_async(f"s3://{self.bucket}/raw/{i}")).memoryview()

    async def delete(self, i: int) -> None:
        await asyncio.to_thread(self.lib.delete, f"s3://{self.bucket}/raw/{i}")

    async def close(self) -> None:
        pass


class _RawThreaded:
    """A blocking client's put/get on a thread pool of ``concurrency`` threads."""

    def __init__(self, concurrency: int) -> None:
        self.pool = ThreadPoolExecutor(concurrency)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def close(self) -> None:
        self.pool.shutdown()


class RawMinio(_RawThreaded):
    """minio put_object/get_object on a thread pool."""

    def __init__(self, opts: StoreOptions, bucket: str, concurrency: int) -> None:
        super().__init__(concurrency)
        import urllib3
        from minio import Minio

        o = self.opts = opts.s3
        self.client = Minio(
            o.endpoint_url.split("//")[1],
            access_key=o.access_key_id,
            secret_key=o.secret_access_key,
            secure=False,
            region=o.region,
            http_client=urllib3.PoolManager(maxsize=concurrency),
        )
        self.bucket = bucket

    def _put(self, i: int, data: bytes) -> None:
        import io

        self.client.put_object(self.bucket, f"raw/{i}", io.BytesIO(data), len(data))

    def _get(self, i: int) -> bytes:
        r = self.client.get_object(self.bucket, f"raw/{i}")
        try:
            return r.data
        finally:
            r.close()
            r.release_conn()

    async def put(self, i: int, data: bytes) -> None:
        await self._run(self._put, i, data)

    async def get(self, i: int) -> bytes:
        return await self._run(self._get, i)

    async def delete(self, i: int) -> None:
        await self._run(self.client.remove_object, self.bucket, f"raw/{i}")


class RawS3Torch(_RawThreaded):
    """s3torchconnectorclient's MountpointS3Client put_object stream / get_object on a thread pool."""

    def __init__(self, opts: StoreOptions, bucket: str, concurrency: int) -> None:
        super().__init__(concurrency)
        from s3torchconnectorclient._mountpoint_s3_client import MountpointS3Client

        o = opts.s3
        self.client = MountpointS3Client(o.region, endpoint=o.endpoint_url, force_path_style=True)
        self.bucket = bucket

    def _put(self, i: int, data: bytes) -> None:
        stream = self.client.put_object(self.bucket, f"raw/{i}")
        stream.write(data)
        stream.close()

    async def put(self, i: int, data: bytes) -> None:
        await self._run(self._put, i, data)

    async def get(self, i: int) -> bytes:
        return await self._run(lambda: b"".join(self.client.get_object(self.bucket, f"raw/{i}")))

    async def delete(self, i: int) -> None:
        await self._run(self.client.delete_object, self.bucket, f"raw/{i}")


LIBRARIES = ("s3dlio", "minio", "s3torchconnector")


class RawMem:
    """A bare dict: the floor the mem:// backend can be compared with."""

    def __init__(self) -> None:
        self.d: dict[int, bytes] = {}

    async def put(self, i: int, data: bytes) -> None:
        self.d[i] = bytes(data)

    async def get(self, i: int) -> bytes:
        return self.d[i]

    async def close(self) -> None:
        self.d.clear()


# ---- one backend ----
async def bench_backend(
    name: str, uri: str, session: StorageSession, args: argparse.Namespace, scratch: Path
) -> dict[str, float]:
    data = np.random.default_rng(0).integers(0, 256, args.size, dtype=np.uint8).tobytes()
    cfg = StorageConfig(storage_options=(("storage_library", name),)) if name in LIBRARIES else None
    store: ObjectStore = await session.open(uri, cfg, threads=args.concurrency)
    opts = session.options_for(uri, cfg, threads=args.concurrency)
    boto: RawS3 | None = None
    if name in LIBRARIES:
        await store.put("warm", b"x")  # creates the bucket on the emulator (and exports s3dlio's settings)
        bucket = uri.split("/")[2]
        raw = (
            RawS3dlio(bucket)
            if name == "s3dlio"
            else RawMinio(opts, bucket, args.concurrency)
            if name == "minio"
            else RawS3Torch(opts, bucket, args.concurrency)
        )
        boto = await RawS3(opts, bucket, args.concurrency).open()
    elif name in ("file", "direct"):
        raw: Any = RawFile(scratch / f"raw-{name}", args.concurrency, direct=name == "direct")
    elif name == "s3":
        await store.put("warm", b"x")  # creates the bucket on the emulator
        raw = await RawS3(opts, uri.split("/")[2], args.concurrency).open()
    elif name == "az":
        await store.put("warm", b"x")
        raw = await RawAzure(opts, uri.split("/")[2]).open()
    else:
        raw = RawMem()
    best = dict.fromkeys(("ours_put", "raw_put", "ours_get", "raw_get", "boto_put", "boto_get"), 0.0)
    total_mb = args.size * args.count / 1e6
    try:
        for _ in range(args.rounds):
            t = await timed(lambda i: store.put(f"obj/{i}", data), args.count, args.concurrency)
            best["ours_put"] = max(best["ours_put"], total_mb / t)
            t = await timed(lambda i: raw.put(i, data), args.count, args.concurrency)
            best["raw_put"] = max(best["raw_put"], total_mb / t)
            t = await timed(lambda i: store.get(f"obj/{i}"), args.count, args.concurrency)
            best["ours_get"] = max(best["ours_get"], total_mb / t)
            t = await timed(lambda i: raw.get(i), args.count, args.concurrency)
            best["raw_get"] = max(best["raw_get"], total_mb / t)
            if boto is not None:
                t = await timed(lambda i: boto.put(i, data), args.count, args.concurrency)
                best["boto_put"] = max(best["boto_put"], total_mb / t)
                t = await timed(lambda i: boto.get(i), args.count, args.concurrency)
                best["boto_get"] = max(best["boto_get"], total_mb / t)
    finally:
        await store.delete_prefix("obj/")
        await store.delete("warm")
        if boto is not None:
            for i in range(args.count):
                await raw.delete(i)  # boto wrote the same raw/ keys: one delete covers both
            await boto.close()
        if name in ("s3", "az"):
            for i in range(args.count):
                await (
                    raw.client.delete_object(Bucket=raw.bucket, Key=f"raw/{i}")
                    if name == "s3"
                    else raw.cc.delete_blob(f"raw/{i}")
                )
        await raw.close()
        await store.close()
    return best


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table of MB/s and ratios (ours / raw)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="file,direct,mem,s3,az")
    ap.add_argument("--size", type=parse_size, default=parse_size("4MiB"), help="object size, e.g. 4MiB")
    ap.add_argument("--count", type=int, default=32, help="objects per round")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default=None, help="scratch folder for file/direct (default: temp under cwd)")
    ap.add_argument("--s3-uri", default="s3://dlio-bench/run")
    ap.add_argument("--az-uri", default="az://dlio-bench/run")
    args = ap.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="dlio-bench-", dir=args.dir or Path.cwd()))
    session = StorageSession(scratch / "root")
    uris = {
        "file": f"file://{scratch}/file",
        "direct": f"direct://{scratch}/direct",
        "mem": "mem://bench/x",
        "s3": args.s3_uri,
        "az": args.az_uri,
        **{lib: f"{args.s3_uri}-{lib.lower()}" for lib in LIBRARIES},
    }
    print(
        f"object {args.size} B x {args.count}, concurrency {args.concurrency}, best of {args.rounds} "
        f"(MB/s; ratio = ours / raw)"
    )
    print(f"os.getloadavg() before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"{'backend':16} {'put ours':>9} {'put raw':>9} {'ratio':>6}   {'get ours':>9} {'get raw':>9} "
        f"{'ratio':>6}   {'put ÷ aiobotocore raw':>21} {'get ÷ aiobotocore raw':>21}"
    )
    try:
        for name in args.backends.split(","):
            r = asyncio.run(bench_backend(name, uris[name], session, args, scratch))
            vs_boto = (
                f"   {r['ours_put'] / r['boto_put']:21.2f} {r['ours_get'] / r['boto_get']:21.2f}"
                if r["boto_put"]
                else ""
            )
            print(
                f"{name:16} {r['ours_put']:9.1f} {r['raw_put']:9.1f} {r['ours_put'] / r['raw_put']:6.2f}   "
                f"{r['ours_get']:9.1f} {r['raw_get']:9.1f} {r['ours_get'] / r['raw_get']:6.2f}{vs_boto}",
                flush=True,
            )
        for line in session.header_lines()[2:]:
            print(line)
        print(f"os.getloadavg() after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        session.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
