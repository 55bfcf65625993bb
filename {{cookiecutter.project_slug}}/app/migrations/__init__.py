"""Alembic migrations, shipped inside the package so the image always carries them."""
