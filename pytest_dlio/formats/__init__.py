"""One module per DLIO format, each a ``Format`` (``formats/base.py``); ``get_format(name)`` picks one.

Every format is pure code on bytes, so every storage backend gets every format. Importing this
package is cheap: the heavy libraries (h5py, pyarrow, Pillow) are imported when a format first uses
them. Adding a format is one module defining a ``Format`` and one line in ``_ALL`` below.
"""

from __future__ import annotations

from pytest_dlio.errors import ConfigError
from pytest_dlio.formats import csvfmt, hdf5, image, indexed_binary, npy, npz, parquet, synthetic, tfrecord
from pytest_dlio.formats.base import DataFile, Encoded, Format, ReadUnit, Spans, Stream, sample_of

_ALL: tuple[Format, ...] = (
    npz.FORMAT,
    npy.FORMAT,
    hdf5.FORMAT,
    csvfmt.FORMAT,
    image.JPEG,
    image.PNG,
    tfrecord.FORMAT,
    indexed_binary.INDEXED,
    indexed_binary.MMAP,
    parquet.FORMAT,
    synthetic.FORMAT,
)
#: Every format DLIO can generate, by its ``dataset.format`` name.
FORMATS: dict[str, Format] = {f.name: f for f in _ALL}
NAMES = tuple(FORMATS)
#: ``dataset.format`` values DLIO's config accepts that have no generator or reader (config/schema.py).
WITHOUT_GENERATOR = ("hdf5_opt",)


def get_format(name: str) -> Format:
    """The format DLIO calls ``name`` (ConfigError for formats without a generator)."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(
            f"dataset.format: {name!r} has no data generator; use one of {', '.join(NAMES)}"
        ) from None


__all__ = [
    "FORMATS",
    "NAMES",
    "WITHOUT_GENERATOR",
    "DataFile",
    "Encoded",
    "Format",
    "ReadUnit",
    "Spans",
    "Stream",
    "get_format",
    "sample_of",
]
