"""File metadata table."""

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, CreatedAtMixin, IdMixin, OwnedMixin


class StoredFile(IdMixin, CreatedAtMixin, OwnedMixin, Base):
    __tablename__ = "files"
    __table_args__ = (Index("ix_files_owner_created_at", "owner", "created_at"),)

    # The client's name, kept for display and downloads only; never used as a path.
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
