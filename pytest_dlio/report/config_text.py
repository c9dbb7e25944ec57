"""``--dlio-show-config``: a workload's normalised config (every default filled, secrets as ``***``)."""

from __future__ import annotations

import json

import yaml

from pytest_dlio.config.load import normalised
from pytest_dlio.config.model import WorkloadConfig
from pytest_dlio.config.secrets import redact


def config_text(cfg: WorkloadConfig, fmt: str = "yaml") -> str:
    data = redact(normalised(cfg))
    if fmt == "json":
        return json.dumps(data, indent=2)
    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=None))
