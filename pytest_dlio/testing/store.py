"""StoreTests: the ObjectStore conformance suite; subclass it (no ``Test`` prefix here, so not collected).

A subclass supplies a ``store_uri`` fixture (any URI the session can open: file://, direct://, mem://,
s3://, az://) or overrides the ``make_store`` fixture to build its own backend. Every test works under
a fresh unique prefix and deletes only what it wrote.

    class TestMyStore(StoreTests):
        @pytest.fixture
        def store_uri(self):
            return "s3://my-bucket/conformance"
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest

from pytest_dlio.config.model import StorageConfig
from pytest_dlio.errors import NotFound, StorageError
from pytest_dlio.storage.base import ObjectStore

MiB = 2**20
Body = Callable[[ObjectStore, str], Awaitable[None]]


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic random bytes (numpy, no Python loop)."""
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


async def _collect(store: ObjectStore, prefix: str) -> dict[str, int]:
    return {k: n async for k, n in store.list(prefix)}


def _every_op(store: ObjectStore, key: str) -> dict[str, Callable[[], Awaitable[object]]]:
    """Each keyed method of ``store`` called on ``key``, by name."""
    return {
        "put": lambda: store.put(key, b"x"),
        "get": lambda: store.get(key),
        "get_range": lambda: store.get_range(key, 0, 1),
        "get_ranges": lambda: store.get_ranges(key, [(0, 1)]),
        "get_suffix": lambda: store.get_suffix(key, 1),
        "size": lambda: store.size(key),
        "delete": lambda: store.delete(key),
        "open_writer": lambda: store.open_writer(key),
    }


class StoreTests:
    """Hard cases every ObjectStore must pass: sizes, ranges, listing, overwrite, delete, errors, writers."""

    #: Size of the large round trip (above S3 multipart / Azure block thresholds).
    large_size: int = 64 * MiB
    #: Keys in the pagination test (> 1000 crosses S3's default page size).
    many_keys: int = 1100

    @pytest.fixture
    def store_config(self) -> StorageConfig | None:
        """The storage section whose storage_options the store is opened with (override to tune)."""
        return None

    @pytest.fixture
    def make_store(
        self, request: pytest.FixtureRequest, store_uri: str, store_config: StorageConfig | None
    ) -> Callable[[], Awaitable[ObjectStore]]:
        """A factory opening a new store on the running loop (override for a custom backend)."""
        from pytest_dlio.storage.pytest_plugin import get_storage_session

        session = get_storage_session(request.config)
        return lambda: session.open(store_uri, store_config)

    def run(self, make_store: Callable[[], Awaitable[ObjectStore]], body: Body) -> None:
        """Run ``body(store, prefix)`` on a fresh loop and store, then delete the prefix and close."""

        async def main() -> None:
            store = await make_store()
            prefix = f"dlio-conformance-{uuid.uuid4().hex[:12]}"
            try:
                await body(store, prefix)
            finally:
                try:
                    await store.delete_prefix(prefix + "/")
                finally:
                    await store.close()

        asyncio.run(main())

    # ---- round trips ----
    @pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, MiB + 3, 6 * MiB + 1])
    def test_put_get_roundtrip(self, make_store: Any, size: int) -> None:
        async def body(store: ObjectStore, p: str) -> None:
            data = payload(size, size)
            await store.put(f"{p}/obj.bin", data)
            assert bytes(await store.get(f"{p}/obj.bin")) == data
            assert await store.size(f"{p}/obj.bin") == size
            assert await _collect(store, f"{p}/") == {f"{p}/obj.bin": size}

        self.run(make_store, body)

    def test_large_roundtrip(self, make_store: Any) -> None:
        async def body(store: ObjectStore, p: str) -> None:
            data = payload(self.large_size + 5, 1)
            await store.put(f"{p}/large.bin", data)
            assert await store.size(f"{p}/large.bin") == len(data)
            got = await store.get(f"{p}/large.bin")
            assert len(got) == len(data) and bytes(got) == data
            tail = await store.get_range(f"{p}/large.bin", len(data) - 10, 100)
            assert bytes(tail) == data[-10:]

        self.run(make_store, body)

    @pytest.mark.parametrize("size", [1000, 9 * MiB + 1], ids=["small", "above-part-size"])
    def test_any_buffer_and_reused_buffers(self, make_store: Any, size: int) -> None:
        # Buffer is bytes | bytearray | memoryview; a caller may reuse its buffer once the call returns
        async def body(store: ObjectStore, p: str) -> None:
            data = payload(size + 2, 7)
            await store.put(f"{p}/mv", np.frombuffer(data, np.uint8).data[1:-1])
            await store.put(f"{p}/ba", bytearray(data))
            buf = bytearray(data[: size // 2])
            async with await store.open_writer(f"{p}/w") as writer:
                await writer.write(memoryview(buf))
                buf[:] = data[size // 2 : size // 2 * 2]  # refilled in place once write returned
                await writer.write(buf)
            assert bytes(await store.get(f"{p}/mv")) == data[1:-1]
            assert bytes(await store.get(f"{p}/ba")) == data
            assert bytes(await store.get(f"{p}/w")) == data[: size // 2 * 2]

        self.run(make_store, body)

    # ---- ranges ----
    #: (name, start, length) against a 10 000-byte object; one object serves every case.
    RANGES = [
        ("start", 0, 100),
        ("start-page", 0, 4096),
        ("middle", 5000, 3000),
        ("middle-aligned", 4096, 4096),
        ("end", 9_900, 100),
        ("across-end", 9_950, 500),
        ("at-end", 10_000, 10),
        ("past-end", 20_000, 10),
        ("zero-length", 123, 0),
        ("whole", 0, 10_000),
        ("longer-than-object", 0, 50_000),
    ]

    def test_get_range(self, make_store: Any) -> None:
        async def body(store: ObjectStore, p: str) -> None:
            data = payload(10_000, 7)
            await store.put(f"{p}/r.bin", data)
            for name, start, length in self.RANGES:
                got = bytes(await store.get_range(f"{p}/r.bin", start, length))
                assert got == data[start : start + length], (
                    f"range {name} ({start}, {length}): {len(got)} bytes"
                )

        self.run(make_store, body)

    def test_get_ranges(self, make_store: Any) -> None:
        async def body(store: ObjectStore, p: str) -> None:
            data = payload(10_000, 8)
            await store.put(f"{p}/r.bin", data)
            ranges = [(start, length) for _, start, length in self.RANGES]
            got = [bytes(g) for g in await store.get_ranges(f"{p}/r.bin", ranges)]
            assert got == [data[s : s + n] for s, n in ranges]
            many = [(i * 97 % 9_000, 1 + i % 300) for i in range(40)]  # more than any backend keeps in flight
            got = [bytes(g) for g in await store.get_ranges(f"{p}/r.bin", many)]
            assert got == [data[s : s + n] for s, n in many]
            assert await store.get_ranges(f"{p}/r.bin", []) == []

        self.run(make_store, body)

    #: suffix lengths against the 10 000-byte object: shorter, equal to and longer than it.
    SUFFIXES = [0, 1, 8, 4096, 9_999, 10_000, 10_001, 1_000_000]

    def test_get_suffix(self, make_store: Any) -> None:
        async def body(store: ObjectStore, p: str) -> None:
            data = payload(10_000, 9)
            await store.put(f"{p}/s.bin", data)
            for n in self.SUFFIXES:
                got = bytes(await store.get_suffix(f"{p}/s.bin", n))
                assert got == (data[-n:] if n else b""), f"suffix {n}: {len(got)} bytes"
            await store.put(f"{p}/empty", b"")
            assert bytes(await store.get_suffix(f"{p}/empty", 8)) == b""

        self.run(make_store, body)

    def test_get_pooled(self, make_store: Any) -> None:
        """``get``'s bytes and errors, pooled buffer or not (``pooled_reads``); released twice harmlessly."""

        async def body(store: ObjectStore, p: str) -> None:
            for size in (0, 10, 3 * MiB + 5):
                data = payload(size, 11)
                await store.put(f"{p}/g{size}", data)
                for _ in range(2):  # the second read may reuse the first's buffer
                    got = await store.get_pooled(f"{p}/g{size}")
                    assert bytes(got.data) == data, f"{size} bytes"
                    got.release()
                    got.release()
            with pytest.raises(NotFound, match=r"^get .*missing\.bin: no such key$"):
                await store.get_pooled(f"{p}/missing.bin")

        self.run(make_store, body)

    def test_negative_ranges_rejected(self, make_store: Any) -> None:
        async def body(store: ObjectStore, p: str) -> None:
            await store.put(f"{p}/n.bin", b"0123456789")
            calls = [
                lambda: store.get_range(f"{p}/n.bin", -1, 5),
                lambda: store.get_range(f"{p}/n.bin", 0, -1),
                lambda: store.get_ranges(f"{p}/n.bin", [(0, 2), (-3, 2)]),
                lambda: store.get_suffix(f"{p}/n.bin", -4),
            ]
            for call in calls:
                with pytest.raises(StorageError, match="must be >= 0") as info:
                    await call()
                assert not isinstance(info.value, NotFound)
            assert bytes(await store.get(f"{p}/n.bin")) == b"0123456789"

        self.run(make_store, body)

    def test_local_path_capability(self, make_store: Any) -> None:
        async def body(store: ObjectStore, p: str) -> None:
            await store.put(f"{p}/l/x.bin", b"local")
            path = store.local_path(f"{p}/l/x.bin")
            if store.local_root is None:
                assert path is None
            else:
                assert path == store.local_root / p / "l" / "x.bin" and path.read_bytes() == b"local"

        self.run(make_store, body)

    def test_get_range_empty_object(self, make_store: Any) -> None:
        async def body(store: ObjectStore, p: str) -> None:
            await store.put(f"{p}/empty", b"")
            assert bytes(await store.get_range(f"{p}/empty", 0, 10)) == b""

        self.run(make_store, body)

    # ---- missing keys ----
    def test_missing_key_raises_not_found(self, make_store: Any) -> None:
        async def body(store: ObjectStore, p: str) -> None:
            key = f"{p}/missing.bin"
            calls = {
                "get": lambda: store.get(key),
                "get_range": lambda: store.get_range(key, 0, 10),
                "get_ranges": lambda: store.get_ranges(key, [(0, 10), (5, 5)]),
                "get_suffix": lambda: store.get_suffix(key, 8),
                "size": lambda: store.size(key),
            }
            for op, call in calls.items():
                with pytest.raises(NotFound, match=rf"^{op} .*missing\.bin: no such key$"):
                    await call()
            assert not await store.exists(key)

        self.run(make_store, body)

    def test_missing_key_zero_length_range(self, make_store: Any) -> None:
        async def body(store: ObjectStore, p: str) -> None:
            key = f"{p}/missing.bin"
            for call in (
                lambda: store.get_range(key, 0, 0),
                lambda: store.get_ranges(key, [(0, 0)]),
                lambda: store.get_ranges(key, []),
                lambda: store.get_suffix(key, 0),
            ):
                with pytest.raises(NotFound):
                    await call()

        self.run(make_store, body)

    BAD_KEYS = ["", "/abs", "{p}/../escape", "{p}/./x", "{p}//double", "{p}/trailing/", "..", "{p}/nul\x00"]

    def test_bad_keys_rejected(self, make_store: Any) -> None:
        async def body(store: ObjectStore, p: str) -> None:
            await store.put(f"{p}/ok", b"ok")
            for pattern in self.BAD_KEYS:
                key = pattern.replace("{p}", p)
                for op, call in _every_op(store, key).items():
                    with pytest.raises(StorageError, match=rf"^{op} .*keys are relative") as info:
                        await call()
                    assert not isinstance(info.value, NotFound), f"{op} {key!r}"
                with pytest.raises(StorageError, match="keys are relative"):
                    store.local_path(key)
            for prefix in ("/abs", f"{p}/../", f"{p}//", "./"):
                with pytest.raises(StorageError, match="prefixes are relative"):
                    _ = [k async for k in store.list(prefix)]
            assert await _collect(store, f"{p}/") == {f"{p}/ok": 2}

        self.run(make_store, body)

    # ---- listing ----
    def test_list_many_keys_paginates(self, make_store: Any) -> None:
        async def body(store: ObjectStore, p: str) -> None:
            slots = asyncio.Semaphore(32)

            async def put(i: int) -> None:
                async with slots:
                    await store.put(f"{p}/many/{i:05d}", i.to_bytes(4, "little")[: i % 4])

            await asyncio.gather(*(put(i) for i in range(self.many_keys)))
            listed: dict[str, int] = {}
            async for k, n in store.list(f"{p}/many/"):
                assert k not in listed, f"{k} listed twice (pagination overlap)"
                listed[k] = n
            assert listed == {f"{p}/many/{i:05d}": i % 4 for i in range(self.many_keys)}
            assert await store.delete_prefix(f"{p}/many/") == self.many_keys
            assert await _collect(store, f"{p}/many/") == {}

        self.run(make_store, body)

    def test_list_sibling_prefixes(self, make_store: Any) -> None:
        async def body(store: ObjectStore, p: str) -> None:
            # No key is both an object and a folder ("c" and "c/0"): filesystems cannot hold that.
            keys = [f"{p}/c-file", f"{p}/cc/0", f"{p}/c/0", f"{p}/c/1/2", f"{p}/d"]
            for k in keys:
                await store.put(k, k.encode())
            assert set(await _collect(store, f"{p}/c/")) == {f"{p}/c/0", f"{p}/c/1/2"}
            assert set(await _collect(store, f"{p}/c")) == {
                f"{p}/c-file",
                f"{p}/cc/0",
                f"{p}/c/0",
                f"{p}/c/1/2",
            }
            assert set(await _collect(store, f"{p}/cc")) == {f"{p}/cc/0"}
            assert await _collect(store, f"{p}/nothing/") == {}
            assert await _collect(store, f"{p}/") == {k: len(k.encode()) for k in keys}

        self.run(make_store, body)

    def test_nested_and_non_ascii_keys(self, make_store: Any) -> None:
        async def body(store: ObjectStore, p: str) -> None:
            keys = [
                f"{p}/a/b/c/d/e.npz",
                f"{p}/ünï/cödé 文件.npz",
                f"{p}/space dir/x y.bin",
                f"{p}/ümlaut+plus=.bin",
            ]
            for i, k in enumerate(keys):
                await store.put(k, payload(100 + i, i))
            for i, k in enumerate(keys):
                assert bytes(await store.get(k)) == payload(100 + i, i)
            assert await _collect(store, f"{p}/") == {k: 100 + i for i, k in enumerate(keys)}

        self.run(make_store, body)

    # ---- overwrite and delete ----
    def test_overwrite(self, make_store: Any) -> None:
        async def body(store: ObjectStore, p: str) -> None:
            await store.put(f"{p}/o", payload(50_000, 1))
            await store.put(f"{p}/o", b"short")
            assert bytes(await store.get(f"{p}/o")) == b"short"
            assert await store.size(f"{p}/o") == 5
            assert await _collect(store, f"{p}/") == {f"{p}/o": 5}

        self.run(make_store, body)

    def test_delete_and_delete_missing(self, make_store: Any) -> None:
        async def body(store: ObjectStore, p: str) -> None:
            await store.put(f"{p}/gone", b"x")
            await store.put(f"{p}/kept", b"y")
            await store.delete(f"{p}/gone")
            await store.delete(f"{p}/gone")
            await store.delete(f"{p}/never/existed")
            assert not await store.exists(f"{p}/gone")
            assert await _collect(store, f"{p}/") == {f"{p}/kept": 1}

        self.run(make_store, body)

    # ---- concurrency ----
    def test_concurrent_writers_and_readers(self, make_store: Any) -> None:
        async def body(store: ObjectStore, p: str) -> None:
            blobs = {f"{p}/conc/{i}": payload(64 * 1024 + i, i) for i in range(24)}
            await asyncio.gather(*(store.put(k, v) for k, v in blobs.items()))
            got = await asyncio.gather(*(store.get(k) for k in blobs))
            assert [bytes(g) for g in got] == list(blobs.values())
            ranges = await asyncio.gather(*(store.get_range(k, 1000, 2000) for k in blobs))
            assert [bytes(r) for r in ranges] == [v[1000:3000] for v in blobs.values()]

        self.run(make_store, body)

    def test_readers_see_old_or_new_never_half(self, make_store: Any) -> None:
        async def body(store: ObjectStore, p: str) -> None:
            old, new = payload(256 * 1024, 1), payload(256 * 1024, 2)
            key = f"{p}/atomic"
            await store.put(key, old)

            async def writer() -> None:
                for i in range(6):
                    await store.put(key, new if i % 2 == 0 else old)

            async def reader() -> list[bytes]:
                return [bytes(await store.get(key)) for _ in range(6)]

            results = await asyncio.gather(writer(), reader(), reader())
            for seen in results[1:]:
                assert all(s in (old, new) for s in seen)

        self.run(make_store, body)

    # ---- streaming writer ----
    @pytest.mark.parametrize(
        "chunks",
        [[], [0], [1, 4095, 3], [3 * MiB, 3 * MiB, 3 * MiB, 7]],
        ids=["no-writes", "empty-write", "odd-small", "above-part-size"],
    )
    def test_writer_commit(self, make_store: Any, chunks: list[int]) -> None:
        async def body(store: ObjectStore, p: str) -> None:
            parts = [payload(n, i) for i, n in enumerate(chunks)]
            writer = await store.open_writer(f"{p}/w.bin")
            for part in parts:
                await writer.write(part)
            assert not await store.exists(f"{p}/w.bin")
            await writer.close()
            data = b"".join(parts)
            assert await store.size(f"{p}/w.bin") == len(data)
            assert bytes(await store.get(f"{p}/w.bin")) == data

        self.run(make_store, body)

    def test_writer_large(self, make_store: Any) -> None:
        async def body(store: ObjectStore, p: str) -> None:
            chunk = payload(MiB + 1, 3)
            n = self.large_size // len(chunk) + 1
            async with await store.open_writer(f"{p}/big") as writer:
                for _ in range(n):
                    await writer.write(chunk)
            assert await store.size(f"{p}/big") == n * len(chunk)
            assert bytes(await store.get_range(f"{p}/big", (n - 1) * len(chunk), len(chunk))) == chunk

        self.run(make_store, body)

    @pytest.mark.parametrize("size", [10, 9 * MiB])
    def test_writer_abort_leaves_nothing(self, make_store: Any, size: int) -> None:
        async def body(store: ObjectStore, p: str) -> None:
            await store.put(f"{p}/existing", b"old")
            for key in (f"{p}/new", f"{p}/existing"):
                writer = await store.open_writer(key)
                await writer.write(payload(size, 5))
                await writer.abort()
            assert await _collect(store, f"{p}/") == {f"{p}/existing": 3}
            assert bytes(await store.get(f"{p}/existing")) == b"old"

        self.run(make_store, body)

    def test_writer_context_manager_aborts_on_error(self, make_store: Any) -> None:
        async def body(store: ObjectStore, p: str) -> None:
            with pytest.raises(RuntimeError, match="boom"):
                async with await store.open_writer(f"{p}/cm") as writer:
                    await writer.write(b"partial")
                    raise RuntimeError("boom")
            assert await _collect(store, f"{p}/") == {}

        self.run(make_store, body)
