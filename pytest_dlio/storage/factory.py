"""``open_store``: pick a backend by URI scheme, importing optional client libraries lazily."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pytest_dlio.errors import StorageError
from pytest_dlio.storage.base import ObjectStore
from pytest_dlio.storage.settings import StoreOptions
from pytest_dlio.storage.uri import parse_throttle, parse_uri

#: What each need imports and the pip extra that installs it (``moto``: the embedded S3 emulator's server).
_EXTRAS = {
    "s3": (("aiobotocore",), "s3", ""),
    "az": (("azure.storage.blob", "aiohttp"), "azure", ""),
    "moto": (
        ("moto", "flask", "flask_cors"),
        "emulators",
        "; or point at a real endpoint (storage_options.endpoint_url or AWS_ENDPOINT_URL)",
    ),
}
#: ``storage_library`` -> (module it needs, pip extra) for s3:// stores; anything else uses aiobotocore.
S3_LIBRARIES = {
    "s3dlio": ("s3dlio", "s3dlio"),
    "minio": ("minio", "minio"),
    "s3torchconnector": ("s3torchconnectorclient", "s3torchconnector"),
}


def s3_library(opts: StoreOptions) -> str:
    """The client library an s3:// store opened with ``opts`` uses."""
    return opts.library if opts.library in S3_LIBRARIES else "aiobotocore"


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def require_extra(uri: str, need: str) -> None:
    """StorageError naming the pip extra when a module ``need`` (a scheme, or ``moto``) imports is missing."""
    modules, extra, alternative = _EXTRAS[need]
    missing = [m for m in modules if not _installed(m)]
    if missing:
        names, verb = ", ".join(missing), "is" if len(missing) == 1 else "are"
        what = (
            f"no S3 endpoint is configured and the embedded emulator needs {names}, which {verb}"
            if need == "moto"
            else f"{names} {verb}"
        )
        raise StorageError(
            uri, "open", reason=f"{what} not installed; pip install 'pytest-dlio[{extra}]'{alternative}"
        )


def open_store(uri: str, options: StoreOptions | None = None) -> ObjectStore:
    """A store rooted at ``uri`` (file://, direct://, mem://, s3://, az://); no I/O until first use.

    ``?bandwidth_mib_s=B&latency_ms=L`` on any URI wraps the store in a :class:`ThrottledStore`.
    """
    base, throttle = parse_throttle(uri)
    store = _backend(base, options or StoreOptions())
    if throttle is None:
        return store
    from pytest_dlio.storage.throttle import ThrottledStore

    return ThrottledStore(store, throttle, uri)


def _backend(uri: str, opts: StoreOptions) -> ObjectStore:
    p = parse_uri(uri)
    if p.scheme == "file":
        from pytest_dlio.storage.file import FileStore

        return FileStore(uri, Path(p.path), opts.threads)
    if p.scheme == "direct":
        from pytest_dlio.storage.direct import DirectStore

        return DirectStore(uri, Path(p.path), opts.threads)
    if p.scheme == "mem":
        from pytest_dlio.storage.memory import MemoryStore

        return MemoryStore(uri, p.netloc, p.path)
    require_extra(uri, p.scheme)
    if p.scheme == "s3":
        return _s3_backend(uri, p.netloc, p.path, opts)
    from pytest_dlio.storage.azure import AzureStore

    return AzureStore(uri, opts)


def _s3_backend(uri: str, bucket: str, prefix: str, opts: StoreOptions) -> ObjectStore:
    library = s3_library(opts)
    if library == "aiobotocore":
        from pytest_dlio.storage.s3 import S3Store

        return S3Store(uri, bucket, prefix, opts)
    module, extra = S3_LIBRARIES[library]
    if not _installed(module):
        raise StorageError(
            uri,
            "open",
            reason=f"storage_library {library}: {module} is not installed; "
            f"pip install 'pytest-dlio[{extra}]'",
        )
    if library == "s3dlio":
        from pytest_dlio.storage.s3_s3dlio import S3dlioStore

        return S3dlioStore(uri, bucket, prefix, opts)
    if library == "minio":
        from pytest_dlio.storage.s3_minio import MinioStore

        return MinioStore(uri, bucket, prefix, opts)
    from pytest_dlio.storage.s3_torch import S3TorchStore

    return S3TorchStore(uri, bucket, prefix, opts)
