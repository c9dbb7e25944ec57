"""How many training files MLPerf Storage requires, computed as ``mlpstorage training datasize`` does
(Rules 3.1.2; mlpstorage ``rules/utils.calculate_training_data_size``; mlperf_v3.md §4, peers.md §3.2):

- by memory: the dataset is at least 5 x the clients' total memory (``hosts x memory GiB x 2**30``), in
  whole files of ``samples_per_file x record_length_bytes`` (floor division, as mlpstorage);
- by steps: an epoch is at least 500 steps of ``batch_size`` for every accelerator of every host
  (``500 x batch_size x accelerators // samples_per_file`` files);
- the requirement is the larger of the two.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_dlio.config.model import WorkloadConfig

STEPS_PER_EPOCH = 500
HOST_MEMORY_MULTIPLIER = 5
MAX_NUM_FILES_TRAIN = 128 * 1024  # above this mlpstorage's docstring asks for num_subfolders_train


@dataclass(frozen=True)
class Datasize:
    files: int  # the requirement: max(by_memory, by_steps)
    by_memory: int
    by_steps: int
    total_bytes: int  # files x samples per file x record length
    memory_gib: float  # total client memory used (hosts x per-host GiB)
    accelerators: int
    hosts: int

    @property
    def reason(self) -> str:
        if self.by_memory > self.by_steps:
            return f"{HOST_MEMORY_MULTIPLIER} x client memory ({self.memory_gib:.1f} GiB)"
        return f"{STEPS_PER_EPOCH} steps per epoch at {self.accelerators} accelerator(s)"

    def line(self) -> str:
        sub = (
            f"; above {MAX_NUM_FILES_TRAIN} files set dataset.num_subfolders_train too"
            if self.files > MAX_NUM_FILES_TRAIN
            else ""
        )
        return (
            f"MLPerf datasize: dataset.num_files_train >= {self.files:,} ({self.total_bytes / 2**30:.2f} GiB) "
            f"for {self.accelerators} accelerator(s) on {self.hosts} host(s) with {self.memory_gib / self.hosts:.1f} "
            f"GiB each — set by {self.reason}; by memory {self.by_memory:,}, by steps {self.by_steps:,}{sub}"
        )


def required_files(
    cfg: WorkloadConfig, *, accelerators: int, hosts: int, memory_gib_per_host: float
) -> Datasize:
    """The training file count MLPerf requires for ``cfg`` on this cluster."""
    ds = cfg.dataset
    spf = max(1, ds.num_samples_per_file)
    memory_bytes = int(memory_gib_per_host * 1024**3) * hosts
    file_bytes = spf * int(ds.record_length_bytes)
    by_memory = HOST_MEMORY_MULTIPLIER * memory_bytes // file_bytes if file_bytes > 0 else 0
    by_steps = STEPS_PER_EPOCH * accelerators * cfg.reader.batch_size // spf
    files = max(by_memory, by_steps)
    return Datasize(
        files, by_memory, by_steps, files * file_bytes, memory_bytes / 1024**3, accelerators, hosts
    )
