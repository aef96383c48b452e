"""Realistic model files for the local hub: valid safetensors, big random files, demo repos.

`make_safetensors` writes the real format: an 8-byte little-endian header length, a JSON
header (tensors with dtype, shape and contiguous in-order ``data_offsets``, optional
``__metadata__``) padded with spaces to an 8-byte boundary, then the tensor bytes.
`demo_repo_files` builds a small diffusers-style video model repo (a few hundred KB) and
`create_demo_repos` publishes three of them, e.g. for ``modeldepot serve --demo``.
"""

from __future__ import annotations

import json
import math
import random
import struct
import zipfile
from collections.abc import Mapping, Sequence
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from modeldepot.testing.server import LocalHub

DTYPE_SIZES: Mapping[str, int] = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
RANDOM_CHUNK = 1024 * 1024
DemoKind = Literal["t2v", "ti2v", "i2v"]


def make_safetensors(
    tensors: Mapping[str, tuple[str, Sequence[int]]],
    seed: int = 0,
    *,
    metadata: Mapping[str, str] | None = None,
) -> bytes:
    """Return a valid safetensors file holding `tensors` ({name: (dtype, shape)}) with
    seeded random data, in the given order.

    Raises:
        ValueError: unknown dtype or negative dimension.
    """
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    offset = 0
    for name, (dtype, shape) in tensors.items():
        if dtype not in DTYPE_SIZES or any(d < 0 for d in shape):
            raise ValueError(f"bad tensor spec {name}: {dtype} {list(shape)}")
        nbytes = math.prod(shape) * DTYPE_SIZES[dtype]
        header[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + random.Random(seed).randbytes(offset)


def write_random_file(path: Path, size: int, *, seed: int = 0) -> Path:
    """Write `size` seeded random bytes to `path` in 1 MiB chunks (fine for GiB files)."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        remaining = size
        while remaining > 0:
            step = min(remaining, RANDOM_CHUNK)
            out.write(rng.randbytes(step))
            remaining -= step
    return path


_PIPELINES: Mapping[DemoKind, tuple[str, str]] = {
    "t2v": ("WanPipeline", "text-to-video"),
    "ti2v": ("WanPipeline", "image-text-to-video"),
    "i2v": ("WanImageToVideoPipeline", "image-to-video"),
}
_GITATTRIBUTES = (
    b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    b"*.pth filter=lfs diff=lfs merge=lfs -text\n"
)
_SHARD = "transformer/diffusion_pytorch_model-{:05d}-of-00002.safetensors"


def demo_repo_files(kind: DemoKind = "t2v", *, seed: int = 0, scale: int = 1) -> dict[str, bytes]:
    """A small diffusers-style video model repo: configs, README, a text encoder, a
    2-shard transformer with its index, and a VAE ``.pth``. About 300 KB times `scale`.
    """
    pipeline, task = _PIPELINES[kind]
    width = 64 * scale
    encoder = make_safetensors(
        {
            "shared.weight": ("F16", (256, width)),
            "encoder.block.0.layer.0.SelfAttention.q.weight": ("F16", (width, width)),
            "encoder.final_layer_norm.weight": ("F32", (width,)),
        },
        seed,
        metadata={"format": "pt"},
    )
    shard_specs = [
        {
            "blocks.0.attn.qkv.weight": ("BF16", (3 * width, width)),
            "patch_embedding.weight": ("BF16", (width, 256)),
        },
        {
            "blocks.1.attn.qkv.weight": ("BF16", (3 * width, width)),
            "head.weight": ("BF16", (256, width)),
        },
    ]
    shards = [
        make_safetensors(spec, seed + i + 1, metadata={"format": "pt"})
        for i, spec in enumerate(shard_specs)
    ]
    weight_map = {name: _SHARD.format(i + 1) for i, spec in enumerate(shard_specs) for name in spec}
    index = {"metadata": {"total_size": sum(len(s) for s in shards)}, "weight_map": weight_map}
    files: dict[str, bytes] = {
        ".gitattributes": _GITATTRIBUTES,
        "README.md": _readme(kind, task).encode(),
        "config.json": _json({"_class_name": pipeline, "model_type": kind, "dim": width}),
        "model_index.json": _json(
            {
                "_class_name": pipeline,
                "_diffusers_version": "0.33.0",
                "scheduler": ["diffusers", "UniPCMultistepScheduler"],
                "text_encoder": ["transformers", "UMT5EncoderModel"],
                "tokenizer": ["transformers", "T5TokenizerFast"],
                "transformer": ["diffusers", "WanTransformer3DModel"],
                "vae": ["diffusers", "AutoencoderKLWan"],
            }
        ),
        "scheduler/scheduler_config.json": _json(
            {"_class_name": "UniPCMultistepScheduler", "num_train_timesteps": 1000}
        ),
        "text_encoder/config.json": _json(
            {"architectures": ["UMT5EncoderModel"], "d_model": width}
        ),
        "text_encoder/model.safetensors": encoder,
        "tokenizer/tokenizer_config.json": _json({"model_max_length": 512}),
        "transformer/config.json": _json({"_class_name": "WanTransformer3DModel", "num_layers": 2}),
        "transformer/diffusion_pytorch_model.safetensors.index.json": _json(index),
        "vae/config.json": _json({"_class_name": "AutoencoderKLWan", "z_dim": 16}),
        "vae/diffusion_pytorch_model.pth": _torch_like_zip(64 * 1024 * scale, seed),
    }
    for i, shard in enumerate(shards):
        files[_SHARD.format(i + 1)] = shard
    return files


def create_demo_repos(hub: LocalHub) -> list[str]:
    """Publish the demo repos ``modeldepot-demo/tiny-{t2v,ti2v,i2v}``; return their ids."""
    ids: list[str] = []
    kinds: tuple[DemoKind, ...] = ("t2v", "ti2v", "i2v")
    for seed, kind in enumerate(kinds):
        repo_id = f"modeldepot-demo/tiny-{kind}"
        pipeline_tag = _PIPELINES[kind][1]
        hub.create_repo(
            repo_id,
            demo_repo_files(kind, seed=seed),
            extra_info={
                "pipeline_tag": pipeline_tag,
                "library_name": "diffusers",
                "tags": ["diffusers", pipeline_tag],
            },
        )
        ids.append(repo_id)
    return ids


def _json(obj: object) -> bytes:
    return json.dumps(obj, indent=2).encode() + b"\n"


def _readme(kind: str, task: str) -> str:
    return (
        f"---\nlicense: apache-2.0\nlibrary_name: diffusers\npipeline_tag: {task}\n---\n\n"
        f"# tiny-{kind}\n\nA tiny random {task} model served by the modeldepot local hub.\n"
    )


def _torch_like_zip(size: int, seed: int) -> bytes:
    """A zip laid out like ``torch.save`` output (random tensor storage, inert pickle)."""
    buffer = BytesIO()
    members = {
        # An empty dict, protocol 2: nothing to execute if someone did unpickle it.
        "archive/data.pkl": b"\x80\x02}q\x00.",
        "archive/version": b"3\n",
        "archive/data/0": random.Random(seed).randbytes(size),
    }
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            # A fixed time stamp (zip's default is now): the same seed gives the same bytes,
            # so the demo hub publishes the same commits at every start.
            archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()
