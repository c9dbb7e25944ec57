"""One human line for a :class:`~pytest_dlio.progress.Progress` event (pure; the pytest glue prints it)."""

from __future__ import annotations

from pytest_dlio.progress import Progress

MIB = 2**20
GIB = 2**30


def clock(seconds: float | None) -> str:
    """``m:ss`` or ``h:mm:ss`` (``?`` when unknown)."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def progress_line(workload: str, p: Progress) -> str:
    """``unet3d_h100 train: epoch 1/5 step 40/120, 98.1 samples/s, AU 87.2 % so far, ETA 1:05``."""
    x = p.extra
    if p.phase == "wait":  # a notice, not a count: the engine waits for something (a dataset's lock)
        return f"{workload}: {x.get('message', 'waiting')}"
    if p.phase == "datagen":
        body = (
            f"{x.get('files', '?')}/{x.get('files_total', '?')} files, "
            f"{p.done / MIB:.1f}/{p.total / MIB:.1f} MiB, {p.rate / MIB:.1f} MiB/s"
        )
    elif p.phase == "train":
        body = f"epoch {x.get('epoch', '?')}/{x.get('epochs', '?')} step {x.get('step', '?')}/{x.get('steps', '?')}"
        if x.get("au_percent") is None:  # only excluded first steps so far (DLIO's metric skips them too)
            body += ", warming up"
        else:
            body += (
                f", {float(x.get('samples_per_second') or 0.0):.1f} samples/s, "
                f"AU {float(x['au_percent']):.1f} % so far"
            )
    elif p.phase == "eval":
        body = f"after epoch {x.get('epoch', '?')}: step {p.done:g}/{p.total:g}, {p.rate:.1f} steps/s"
    elif p.phase == "checkpoint":
        body = (
            f"{x.get('kind', '')} {x.get('index', '')}: {p.done / GIB:.2f}/{p.total / GIB:.2f} GB, "
            f"{p.rate / GIB:.2f} GB/s"
        )
    else:
        body = f"{p.done:g}/{p.total:g} {p.unit}, {p.rate:.1f} {p.unit}/s"
    return f"{workload} {p.phase}: {body}, ETA {clock(p.eta)}"
