"""The GPUs of this machine, through NVIDIA's own NVML binding (``nvidia-ml-py``).

Read once per suggestion (NVML answers in microseconds). Without the NVML library (no
NVIDIA driver: a CPU-only machine, a container without the GPU passed through) the answer
is None, and the suggestions say so and leave the VRAM-fit term out rather than guess.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import pynvml

from modeldepot.units import GB

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Gpu:
    name: str
    total_gb: float
    free_gb: float


def detect_gpus() -> list[Gpu] | None:
    """Every NVIDIA GPU with its total and free memory; None when NVML is unavailable."""
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        logger.debug("No NVML: %s", error)
        return None
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            gpus.append(
                Gpu(
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    total_gb=memory.total / GB,
                    free_gb=memory.free / GB,
                )
            )
        return gpus
    except pynvml.NVMLError as error:
        logger.warning("Reading the GPUs through NVML failed: %s", error)
        return None
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()
