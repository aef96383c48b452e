"""The built-in catalogue: the WAN2.2 family our first users run.

Only what a person would read on the model cards is written here (task, quality, speed,
resolutions, VRAM, parameter count). Which files a model has, their sizes and hashes always
come from the hub (resolved to a commit and cached), never from this file.

Sources: the Wan-AI model cards. A14B models are mixture-of-experts with two 14B experts
(27B parameters, 14B active per step); 720p needs about 80 GB of VRAM on one GPU without
offloading. TI2V-5B runs 720p (1280x704) on a 24 GB card. The 480p figure of the A14B
models (48 GB) and the relative quality scores are our estimates from those cards (the
A14B models' outputs rate above the 5B model's; both are the family's best), used only to
rank fallback suggestions.
"""

from __future__ import annotations

from modeldepot.catalog.schemas import CatalogEntry

_A14B_RESOLUTIONS = ["1280x720", "720x1280", "832x480", "480x832"]
_A14B_VRAM = {"1280x720": 80, "720x1280": 80, "832x480": 48, "480x832": 48}

BUILTIN_CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        id="T2V-A14B",
        source="hf://Wan-AI/Wan2.2-T2V-A14B",
        display_name="Wan2.2 T2V A14B",
        description="Text-to-video, mixture of two 14B experts, 480p and 720p",
        model_type="text-to-video",
        capabilities=["text-to-video"],
        quality="high",
        speed="low",
        resolutions=_A14B_RESOLUTIONS,
        min_vram_gb=48,
        vram_gb=_A14B_VRAM,
        quality_score=0.95,
        parameters_b=27,
        version="2.2",
    ),
    CatalogEntry(
        id="I2V-A14B",
        source="hf://Wan-AI/Wan2.2-I2V-A14B",
        display_name="Wan2.2 I2V A14B",
        description="Image-to-video, mixture of two 14B experts, 480p and 720p",
        model_type="image-to-video",
        capabilities=["image-to-video"],
        quality="high",
        speed="low",
        resolutions=_A14B_RESOLUTIONS,
        min_vram_gb=48,
        vram_gb=_A14B_VRAM,
        quality_score=0.95,
        parameters_b=27,
        version="2.2",
    ),
    CatalogEntry(
        id="TI2V-5B",
        source="hf://Wan-AI/Wan2.2-TI2V-5B",
        display_name="Wan2.2 TI2V 5B",
        description="Text- and image-to-video, dense 5B with a high-compression VAE, 720p",
        model_type="text-image-to-video",
        capabilities=["text-to-video", "image-to-video"],
        quality="medium",
        speed="medium",
        resolutions=["1280x704", "704x1280"],
        min_vram_gb=24,
        vram_gb={"1280x704": 24, "704x1280": 24},
        quality_score=0.8,
        parameters_b=5,
        version="2.2",
    ),
)
