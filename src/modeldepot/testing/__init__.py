"""A local Hugging Face Hub for tests, demos and benchmarks, with fault switches.

`LocalHub` runs a real HTTP server speaking the Hub protocol (model info, tree,
paths-info, refs, HEAD/GET /resolve with LFS redirects) plus a CDN server for LFS blobs,
on localhost, in a background thread. huggingface_hub's own client works against it
unchanged, always over plain HTTP (the hub never advertises Xet)::

    from modeldepot.testing import CutBody, LocalHub, demo_repo_files

    with LocalHub() as hub:
        hub.create_repo("acme/tiny-video", demo_repo_files("t2v"))
        hub.faults.add(CutBody(after_bytes=1000), server="cdn", times=1)
        snapshot_download("acme/tiny-video", endpoint=hub.endpoint, cache_dir=tmp)
        assert hub.requests.filter(server="cdn")[0].authorization is None

Repos are built from ``{path: bytes | Path}``; `hub.commit(...)` adds history (older shas
stay downloadable). Faults (`modeldepot.testing.faults`) are armed per request pattern and
implemented on the wire; `hub.requests` records every request. For pytest, the plugin
`modeldepot.testing.pytest_plugin` provides the `local_hub` and `hub_repo` fixtures.
"""

from modeldepot.testing.blobs import git_blob_sha1, lfs_pointer
from modeldepot.testing.faults import (
    ChangeETag,
    CutBody,
    ExtraBytes,
    Fault,
    FaultRule,
    FaultSet,
    GzipBomb,
    IgnoreRange,
    RecordedRequest,
    Redirect,
    RequestLog,
    Stall,
    Status,
    Throttle,
    Trickle,
    WrongBytes,
    WrongContentRange,
)
from modeldepot.testing.generators import (
    create_demo_repos,
    demo_repo_files,
    make_safetensors,
    write_random_file,
)
from modeldepot.testing.repos import (
    DEFAULT_LFS_PATTERNS,
    DEFAULT_LFS_THRESHOLD,
    DEFAULT_TOKEN,
    Commit,
    LfsRule,
    RepoFile,
    RepoNotFoundError,
    Repository,
    default_lfs_rule,
    make_lfs_rule,
)
from modeldepot.testing.server import LocalHub

__all__ = [
    "DEFAULT_LFS_PATTERNS",
    "DEFAULT_LFS_THRESHOLD",
    "DEFAULT_TOKEN",
    "ChangeETag",
    "Commit",
    "CutBody",
    "ExtraBytes",
    "Fault",
    "FaultRule",
    "FaultSet",
    "GzipBomb",
    "IgnoreRange",
    "LfsRule",
    "LocalHub",
    "RecordedRequest",
    "Redirect",
    "RepoFile",
    "RepoNotFoundError",
    "Repository",
    "RequestLog",
    "Stall",
    "Status",
    "Throttle",
    "Trickle",
    "WrongBytes",
    "WrongContentRange",
    "create_demo_repos",
    "default_lfs_rule",
    "demo_repo_files",
    "git_blob_sha1",
    "lfs_pointer",
    "make_lfs_rule",
    "make_safetensors",
    "write_random_file",
]
