"""What a catalogue entry says about a model: where it comes from and what it is good for.

The attributes after ``source`` feed fallback scoring later (model_type, quality, speed,
resolutions, VRAM, parameter count). Sources are ``hf://org/name`` (a hub repository) or an
``https://`` (or ``http://``) URL of one file with an optional ``sha256``.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modeldepot.errors import UnsafePath
from modeldepot.ids import (
    ModelId,
    url_repo_id,
    validate_relative_path,
    validate_repo_id,
    validate_revision,
)


class Level(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"


@dataclass(frozen=True)
class HubSource:
    """A hub model repository at a tracked revision."""

    repo_id: str
    revision: str


@dataclass(frozen=True)
class UrlSource:
    """One file at an https URL, optionally pinned by sha256."""

    url: str
    filename: str
    sha256: str | None
    size: int | None


class CatalogEntry(BaseModel):
    """One model of the catalogue (built-in or from ``MODELDEPOT_CATALOG``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: ModelId
    source: str = Field(description="hf://org/name or an https:// URL of one file")
    revision: str = "main"
    allow_patterns: list[str] | None = None
    ignore_patterns: list[str] | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    size: int | None = Field(default=None, ge=0, description="Bytes, for URL sources")
    display_name: str | None = None
    description: str | None = None
    model_type: str = "unknown"
    capabilities: list[str] = Field(default_factory=list)
    quality: Level = Level.medium
    speed: Level = Level.medium
    resolutions: list[str] = Field(default_factory=list)
    min_vram_gb: float | None = Field(default=None, ge=0)
    vram_gb: dict[str, float] = Field(
        default_factory=dict,
        description="GPU memory a generation needs at each resolution (WIDTHxHEIGHT), GB",
    )
    quality_score: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Output quality relative to the best catalogue model (1.0), 0 to 1",
    )
    parameters_b: float | None = Field(default=None, ge=0, description="Billions of parameters")
    version: str | None = Field(default=None, description="Human version label, if any")
    kind: Literal["hub", "url"] = "hub"

    @field_validator("revision")
    @classmethod
    def _check_revision(cls, value: str) -> str:
        try:
            return validate_revision(value)
        except UnsafePath as exc:
            raise ValueError(exc.message) from exc

    @field_validator("resolutions")
    @classmethod
    def _check_resolutions(cls, value: list[str]) -> list[str]:
        for item in value:
            width, _, height = item.partition("x")
            if not (width.isdigit() and height.isdigit()):
                raise ValueError(f"resolution '{item}' is not WIDTHxHEIGHT")
        return value

    @model_validator(mode="before")
    @classmethod
    def _derive_kind(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("source"), str):
            data = {**data, "kind": "hub" if data["source"].startswith("hf://") else "url"}
        return data

    @model_validator(mode="after")
    def _check_source(self) -> CatalogEntry:
        self.parsed_source()  # raises ValueError with a precise message
        if self.kind == "hub" and (self.sha256 or self.size is not None):
            raise ValueError("sha256 and size are only for URL sources; hub files carry theirs")
        return self

    @property
    def repo_id(self) -> str:
        """The repository folder this model's files live in (hub repo or URL namespace)."""
        source = self.parsed_source()
        return source.repo_id if isinstance(source, HubSource) else url_repo_id(self.id)

    def parsed_source(self) -> HubSource | UrlSource:
        """The source as a typed value.

        Raises:
            ValueError: the source is not ``hf://org/name`` or an ``https://`` file URL.
        """
        if self.source.startswith("hf://"):
            repo_id = self.source.removeprefix("hf://").strip("/")
            try:
                validate_repo_id(repo_id)
            except UnsafePath as exc:
                raise ValueError(f"source '{self.source}' is not hf://org/name") from exc
            return HubSource(repo_id=repo_id, revision=self.revision)
        return UrlSource(
            url=self.source, filename=_url_filename(self.source), sha256=self.sha256, size=self.size
        )


def _url_filename(url: str) -> str:
    parts = urlsplit(url)
    # Plain http is accepted for mirrors on a local network; which hosts may be contacted
    # at all is the downloader's SSRF policy, not the catalogue's.
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"source '{url}' must be hf://org/name or an http(s):// URL")
    if parts.username or parts.password:
        raise ValueError("source URLs must not carry credentials")
    name = posixpath.basename(unquote(parts.path))
    try:
        return validate_relative_path(name)
    except UnsafePath as exc:
        raise ValueError(f"source '{url}' does not end in a file name") from exc
