"""What DLIO's readers expect of a dataset folder we generate (shared/reference/dlio.md §3.2–3.3), on real
file:// and O_DIRECT folders:

- ``{data_folder}/train`` and ``{data_folder}/valid`` both exist, even with ``num_files_eval: 0`` (DLIO 2.0.0
  walks ``valid`` regardless and fails with FileNotFoundError …/valid);
- DLIO's discovery — walk ``train/``; if its first entry is a folder, glob ``train/*/*.{ext}`` sorted by
  base name, else the entries ending in ``{ext}``, sorted — finds exactly ``num_files_train`` files, our
  layout's, in our order; the same for ``valid/``;
- an hdf5 file holds the ``records`` dataset DLIO 2.0.0's reader opens (HEAD's reads ``records_{k}``);
- nothing else in a split folder ends in the format's extension (our size markers live under ``.dlio/`` at
  the data folder's top, temp names never end in it).
"""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import numpy as np
import pytest

from pytest_dlio.config.model import Dataset, Workflow, WorkloadConfig
from pytest_dlio.engine import RunSettings, Workload
from pytest_dlio.formats import get_format
from pytest_dlio.layout import dataset_files, split_keys
from pytest_dlio.storage.direct import probe
from pytest_dlio.storage.session import StorageSession


def dlio_discovery(split_dir: Path, ext: str) -> list[str]:
    """DLIO's file discovery for one split (dlio.md §3.3), as paths relative to the data folder."""
    entries = sorted(os.listdir(split_dir))  # walk_node raises FileNotFoundError when the folder is absent
    if entries and (split_dir / entries[0]).is_dir():
        found = sorted(split_dir.glob(f"*/*.{ext}"), key=lambda p: p.name)
    else:
        found = [split_dir / e for e in entries if e.endswith(ext)]
    return [str(p.relative_to(split_dir.parent)) for p in found]


def generate(root: Path, ds: Dataset, scheme: str) -> Path:
    cfg = WorkloadConfig(dataset=ds, workflow=Workflow(generate_data=True, train=False))
    uri = f"{scheme}://{root}" if scheme == "direct" else None
    settings = RunSettings(data_root=root, output_root=root / "out", storage_uri=uri)
    res = asyncio.run(
        Workload(cfg, settings, StorageSession(settings.data_root, uri), name="d").run("datagen")
    )
    assert res.ok, res.failure
    return root / "data"


CASES = [
    ("npz-no-eval", dict(format="npz", num_files_train=5, num_files_eval=0)),
    ("npy-eval", dict(format="npy", num_files_train=4, num_files_eval=3)),
    ("hdf5-markers", dict(format="hdf5", num_files_train=3, num_files_eval=0)),  # content-sized: markers
    (
        "subfolders",
        dict(
            format="npz", num_files_train=12, num_files_eval=4, num_subfolders_train=3, num_subfolders_eval=2
        ),
    ),
]


@pytest.mark.parametrize("scheme", ["file", "direct"])
@pytest.mark.parametrize(("name", "kw"), CASES, ids=[c[0] for c in CASES])
def test_dlio_finds_our_dataset(tmp_path: Path, scheme: str, name: str, kw: dict) -> None:
    if scheme == "direct" and probe(tmp_path):
        pytest.skip(f"O_DIRECT not supported here: {probe(tmp_path)}")
    ds = Dataset(record_length_bytes=4096, **kw)
    data = generate(tmp_path, ds, scheme)
    ext = get_format(ds.format).extension(ds)
    assert (data / "train").is_dir() and (data / "valid").is_dir()
    assert dlio_discovery(data / "train", ext) == split_keys(ds, "train")
    assert dlio_discovery(data / "valid", ext) == split_keys(ds, "valid")
    assert len(dlio_discovery(data / "valid", ext)) == ds.num_files_eval


def test_an_old_dataset_without_valid_gets_it_on_the_next_auto_run(tmp_path: Path) -> None:
    ds = Dataset(format="npy", num_files_train=2, num_files_eval=0, record_length_bytes=512)
    data = generate(tmp_path, ds, "file")
    (data / "valid").rmdir()
    generate(tmp_path, ds, "file")  # everything complete: nothing rewritten, the folder restored
    assert (data / "valid").is_dir()


def test_hdf5_holds_the_records_dataset_dlio_2_0_0_reads(tmp_path: Path) -> None:
    # DLIO 2.0.0's HDF5Reader reads h5['records'][sample] (HEAD's, records_{k}): without it DLIO 2.0.0 failed
    # on our hdf5 datasets with KeyError "object 'records' doesn't exist"
    import h5py

    ds = Dataset(
        format="hdf5", num_files_train=2, num_files_eval=0, num_samples_per_file=3, record_length_bytes=4096
    )
    data = generate(tmp_path, ds, "file")
    for key in split_keys(ds, "train"):
        with h5py.File(data / key, "r") as h5:
            records, first = h5["records"], h5["records_0"]
            assert records.shape == first.shape and records.shape[0] == ds.num_samples_per_file
            assert records.id.get_offset() == first.id.get_offset()  # one copy of the data, two names
            assert (records[ds.num_samples_per_file - 1] == first[ds.num_samples_per_file - 1]).all()


def test_we_read_an_hdf5_file_as_dlio_2_0_0_writes_it(tmp_path: Path) -> None:
    # DLIO 2.0.0's generator: one dataset named 'records' (num_samples, d1, d2) uint8, plus 'labels'
    import h5py

    recs = np.random.default_rng(1).integers(0, 255, size=(2, 8, 8), dtype=np.uint8)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        h5.create_dataset("records", data=recs)
        h5.create_dataset("labels", data=[0, 0])
    ds = Dataset(format="hdf5", num_files_train=1, num_samples_per_file=2, record_length_bytes=64)
    f = dataset_files(WorkloadConfig(dataset=ds))[0]
    got = get_format("hdf5").decode(buf.getvalue(), f, ds)
    assert len(got) == 2 and (np.asarray(got[1]) == recs[1]).all()
