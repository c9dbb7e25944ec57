"""Datagen on local files makes each file chunk by chunk and writes every chunk as it is made
(``Format.stream`` + ``FileStore.put_chunks_blocking``). Real temp dirs, real np.save/np.savez/zipfile.

What must hold: a streamed npy/npz file is byte for byte what np.save/np.savez write for its contents
(npz: the x member's CRC, known only at the end, is patched into its header); the digest marker is the
digest of the file's bytes on disk; reported bytes are the bytes on disk; a failed stream leaves nothing
(no file, no temp file); O_DIRECT stores refuse the blocking put (datagen uses their own path).
"""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pytest_dlio.config.model import Dataset, Reader, WorkloadConfig
from pytest_dlio.errors import StorageError
from pytest_dlio.formats import get_format
from pytest_dlio.layout import dataset_files
from pytest_dlio.phases.datagen import STREAM_CHUNK, generate
from pytest_dlio.phases.dataset import DIGEST_PREFIX, digest_of_parts
from pytest_dlio.randbytes import file_rng
from pytest_dlio.ranks import SingleComm
from pytest_dlio.report.results import datagen_result
from pytest_dlio.storage.direct import probe
from pytest_dlio.storage.factory import open_store
from pytest_dlio.storage.file import TMP_MARK, FileStore


def config(fmt: str, files: int = 3, **ds: object) -> WorkloadConfig:
    # records over several chunks, of several samples, not a multiple of the chunk size
    base = {"format": fmt, "num_files_train": files, "record_length_bytes": 3 * STREAM_CHUNK // 2 + 4099}
    return WorkloadConfig(
        dataset=Dataset(**{**base, "num_samples_per_file": 2, **ds}),  # type: ignore[arg-type]
        reader=Reader(write_threads=2),
    )


def streamed(tmp_path: Path, cfg: WorkloadConfig) -> dict[str, bytes]:
    """Every file of ``cfg`` streamed into a file store as datagen does; their bytes."""
    store = open_store(tmp_path.as_uri())
    assert isinstance(store, FileStore)
    fmt = get_format(cfg.dataset.format)
    buf = np.empty(STREAM_CHUNK, dtype=np.uint8)
    out = {}
    for f in dataset_files(cfg):
        stream = fmt.stream(f, cfg.dataset, file_rng(5, f.position), buf)
        assert stream is not None
        assert (
            store.put_chunks_blocking(f.key, stream.chunks, stream.patches) == stream.size == f.expected_size
        )
        out[f.key] = (tmp_path / f.key).read_bytes()
    asyncio.run(store.close())
    return out


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_streamed_npz_is_np_savez_with_its_crc_patched(tmp_path: Path, dtype: str) -> None:
    cfg = config("npz", record_element_type=dtype)
    files = streamed(tmp_path, cfg)
    seen = set()
    for data in files.values():
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            assert zf.testzip() is None  # every member's CRC-32 (the patched one too) matches its bytes
        with np.load(io.BytesIO(data)) as z:
            x, y = z["x"], z["y"]
        assert x.dtype == np.dtype(dtype) and x.shape[-1] == 2 and y.tolist() == [0, 0]
        reference = io.BytesIO()
        np.savez(reference, x=x, y=[0, 0])
        assert data == reference.getvalue()  # byte for byte what np.savez writes
        seen.add(data[1000:1064])
    assert len(seen) == len(files)  # every file its own contents


def test_streamed_npy_is_np_save(tmp_path: Path) -> None:
    cfg = config("npy", record_dims=(3, 700, 301), record_element_type="float32")
    for data in streamed(tmp_path, cfg).values():
        x = np.load(io.BytesIO(data))
        assert x.shape == (3, 700, 301, 2) and x.dtype == np.float32
        reference = io.BytesIO()
        np.save(reference, x)
        assert data == reference.getvalue()


@pytest.mark.parametrize("fmt", ["npz", "npy"])
def test_datagen_on_files_records_the_digest_and_bytes_of_what_is_on_disk(tmp_path: Path, fmt: str) -> None:
    cfg = config(fmt, files=4, record_length_bytes=9 << 20)  # digests from 8 MiB on
    root = tmp_path / "data"
    stats = asyncio.run(generate(cfg, open_store(root.as_uri()), comm=SingleComm(), mode="always"))
    props = dict(datagen_result(stats).properties)
    on_disk = {f.key: (root / f.key).read_bytes() for f in dataset_files(cfg)}
    assert props["datagen_bytes"] == sum(len(b) for b in on_disk.values())
    digests = {p.name for p in (root / DIGEST_PREFIX).rglob("*@*")}
    for key, data in on_disk.items():
        want = f"{Path(key).name}@{digest_of_parts([data], len(data))}"
        assert want in digests, (key, sorted(digests))
    assert not [p for p in root.rglob("*") if TMP_MARK in p.name]
    # and auto, reading the sampled blocks back, finds every file intact
    again = asyncio.run(generate(cfg, open_store(root.as_uri()), comm=SingleComm(), mode="auto"))
    assert again.files_written == 0 and again.files_damaged == 0


def test_a_failing_stream_leaves_nothing(tmp_path: Path) -> None:
    store = open_store(tmp_path.as_uri())
    assert isinstance(store, FileStore)

    def chunks() -> Iterator[bytes]:
        yield b"a" * 1000
        raise RuntimeError("generator broke")

    with pytest.raises(RuntimeError, match="generator broke"):
        store.put_chunks_blocking("d/x.npy", chunks())
    assert store.put_chunks_blocking("d/y.npy", iter([b"hello ", b"world"]), lambda: [(0, b"J")]) == 11
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["y.npy"]
    assert (tmp_path / "d" / "y.npy").read_bytes() == b"Jello world"
    with pytest.raises(StorageError, match="put"):
        store.put_chunks_blocking("d/y.npy/z", iter([b"x"]))  # a key under a file: the store's error
    asyncio.run(store.close())


def test_odirect_store_refuses_the_blocking_put(tmp_path: Path) -> None:
    if probe(tmp_path) is not None:
        pytest.skip(f"O_DIRECT unsupported here: {probe(tmp_path)}")
    store = open_store(f"direct://{tmp_path}")
    assert isinstance(store, FileStore)
    with pytest.raises(StorageError, match="use put"):
        store.put_chunks_blocking("x", iter([b"x"]))
    assert not list(tmp_path.iterdir())
