"""File uploads: bytes in the uploads directory, metadata in PostgreSQL."""
