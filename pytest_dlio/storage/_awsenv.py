"""S3 settings for client libraries that read them only from the environment (s3dlio, s3torchconnector).

s3dlio builds one S3 client per process from ``AWS_*`` variables; the AWS CRT behind s3torchconnector reads
its credentials there too. The backend exports the settings the session resolved (options, env, ``.env``,
the embedded moto) before the library's first call. A process can hold one set: a store that needs other
values fails with a message saying so, instead of silently talking to the first store's server.
:func:`as_before` lets ``Environment.capture`` read the environment as it was before pytest-dlio wrote to it,
so a later session does not mistake an exported emulator endpoint for a configured one.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pytest_dlio.errors import StorageError

if TYPE_CHECKING:  # credentials.py imports this module (Environment.capture reads as_before)
    from pytest_dlio.storage.credentials import S3Settings

_LOCK = threading.Lock()
#: name -> (value before pytest-dlio set it, value it set); None: unset.
_EXPORTED: dict[str, tuple[str | None, str | None]] = {}


def aws_variables(s3: S3Settings, *, endpoint: bool) -> dict[str, str | None]:
    """The ``AWS_*`` variables that say ``s3`` (with ``AWS_ENDPOINT_URL`` when ``endpoint``)."""
    values: dict[str, str | None] = {
        "AWS_ACCESS_KEY_ID": s3.access_key_id,
        "AWS_SECRET_ACCESS_KEY": s3.secret_access_key,
        "AWS_SESSION_TOKEN": s3.session_token,
        "AWS_REGION": s3.region,
    }
    if endpoint:
        values["AWS_ENDPOINT_URL"] = s3.endpoint_url
    return values


def export(uri: str, library: str, values: Mapping[str, str | None]) -> None:
    """Set (None: unset) each variable in ``os.environ``; StorageError when one was set to another value.

    The error names the variables only, never a value.
    """
    with _LOCK:
        clash = sorted(n for n, v in values.items() if n in _EXPORTED and _EXPORTED[n][1] != v)
        if clash:
            raise StorageError(
                uri,
                "open",
                reason=(
                    f"{library} reads {', '.join(clash)} from the process environment and builds its S3 "
                    "client "
                    "once per process; this process already set them for a store with another endpoint or "
                    "credentials. Run this workload in a pytest process of its own, or use storage_library "
                    "minio or the default (aiobotocore), which take settings per store"
                ),
            )
        for name, value in values.items():
            if name not in _EXPORTED:
                _EXPORTED[name] = (os.environ.get(name), value)
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def as_before(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with each variable pytest-dlio exported (still holding its value) as it was before."""
    out = dict(environ)
    with _LOCK:
        for name, (before, value) in _EXPORTED.items():
            if out.get(name) != value:
                continue  # changed since (by the user or a test): the current value is theirs
            if before is None:
                out.pop(name, None)
            else:
                out[name] = before
    return out
