"""A workload's name: unique among the configs of one run and stable across runs, since it names the
folder its summary.json and per-rank files go to (``<output>/<name>/``).

- A shipped workload: its name in the catalog, ``/`` → ``__``: ``mlperf_storage_v3.0/llama3_8b.yaml`` →
  ``mlperf_storage_v3.0__llama3_8b``, wherever the package is installed.
- A config under the root directory (pytest's rootdir): its path relative to that root, without the
  ``.yaml``/``.yml`` suffix, ``/`` → ``__``: ``configs/dlio/unet3d_h100.yaml`` →
  ``configs__dlio__unet3d_h100``; ``tiny.yaml`` at the root → ``tiny``.
- A config elsewhere: its stem and the first 8 hex digits of the sha256 of its absolute path:
  ``unet3d_h100-1a2b3c4d`` (two ``unet3d_h100.yaml`` in different folders never share a folder).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pytest_dlio.workloads import ROOT as SHIPPED


def workload_name(path: str | Path, root: str | Path) -> str:
    p, r = Path(path).resolve(), Path(root).resolve()
    if SHIPPED in p.parents:
        return "__".join(p.relative_to(SHIPPED).with_suffix("").parts)
    try:
        rel = p.relative_to(r)
    except ValueError:
        digest = hashlib.sha256(str(p).encode()).hexdigest()[:8]
        return f"{p.stem}-{digest}"
    return "__".join(rel.with_suffix("").parts)
