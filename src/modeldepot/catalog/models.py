"""Tables of the catalogue domain: resolved manifests and each model's resolution state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from modeldepot.db import Base, UtcDateTime


class ManifestRow(Base):
    """The whole file list of one repository at one commit (immutable once stored).

    Models sharing a repository share its rows; each model's ``allow_patterns`` select its
    files when the manifest is read.
    """

    __tablename__ = "manifests"
    __table_args__ = (UniqueConstraint("repo_id", "commit_hash", name="uq_manifests_repo_commit"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))
    repo_id: Mapped[str] = mapped_column(String(200), index=True)
    commit_hash: Mapped[str] = mapped_column(String(40))
    resolved_at: Mapped[datetime] = mapped_column(UtcDateTime())
    files: Mapped[list[ManifestFileRow]] = relationship(
        back_populates="manifest",
        cascade="all, delete-orphan",
        order_by="ManifestFileRow.path",
        lazy="selectin",
    )


class ManifestFileRow(Base):
    __tablename__ = "manifest_files"
    __table_args__ = (UniqueConstraint("manifest_id", "path", name="uq_manifest_files_path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    manifest_id: Mapped[int] = mapped_column(ForeignKey("manifests.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    digest: Mapped[str | None] = mapped_column(String(80), nullable=True)
    manifest: Mapped[ManifestRow] = relationship(back_populates="files")


class ModelSourceState(Base):
    """Where resolving a model's source stands: its newest manifest and its last error."""

    __tablename__ = "model_source_state"

    model_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    latest_manifest_id: Mapped[int | None] = mapped_column(
        ForeignKey("manifests.id", ondelete="SET NULL"), nullable=True
    )
    source: Mapped[str] = mapped_column(Text)
    revision: Mapped[str] = mapped_column(String(200))
    last_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
