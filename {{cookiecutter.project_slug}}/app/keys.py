"""Key owners from the command line, for rotating keys and moving rows between owners.

    python -m app.keys owner < key.txt      print the owner of each key read from stdin
    python -m app.keys move OLD NEW         give OLD's conversations, runs and files to NEW

Keys are read from stdin so that they stay out of shell history and `ps`.
"""

import argparse
import asyncio
import sys
from collections.abc import Sequence

from pydantic import SecretStr, ValidationError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.config.errors import ConfigError
from app.config.keys import KEY_NAME, parse_api_keys
from app.config.settings import DatabaseSettings, KeySettings
from app.conversations.models import Conversation
from app.core.db import create_engine, create_sessionmaker
from app.core.security import UNNAMED_OWNER, owner_of
from app.files.models import StoredFile
from app.runs.models import Run
from app.spend.models import Hold, ModelCall

# Every table with an owner column: a row left behind would answer its new owner 404.
# The ledger too: a key's spend, and what its calls in progress hold, move with it (its sums
# per day and model, spend_days, follow the ledger's rows by themselves).
OWNED_MODELS = (Conversation, Run, StoredFile, ModelCall, Hold)


async def move_rows(*, session: AsyncSession, old: str, new: str) -> dict[str, int]:
    """Give every row of one owner to another, in one transaction; return counts per table."""
    moved = {}
    for model in OWNED_MODELS:
        result = await session.execute(update(model).where(model.owner == old).values(owner=new))
        # An UPDATE gives a CursorResult; session.execute is typed as the wider Result.
        moved[model.__tablename__] = result.rowcount  # type: ignore[attr-defined]
    await session.commit()
    return moved


def owners_of(lines: Sequence[str], secret_key: SecretStr) -> list[str]:
    """Return the owner of each API_KEYS entry (`name:key` or a bare key), one per line."""
    keys = parse_api_keys(",".join(line.strip() for line in lines if line.strip()))
    return [owner_of(key, secret_key) for key in keys]


async def _move(old: str, new: str) -> dict[str, int]:
    # Only a key name, or an unnamed key's id, can own rows.
    if not (KEY_NAME.fullmatch(new) or UNNAMED_OWNER.fullmatch(new)):
        raise ValueError(f"{new!r} is neither a key name nor an owner id printed by 'owner'")
    engine = create_engine(DatabaseSettings().database_url.get_secret_value(), timeout=5)
    try:
        async with create_sessionmaker(engine)() as session:
            return await move_rows(session=session, old=old, new=new)
    finally:
        await engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.keys", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("owner", help="print the owner of each key read from stdin")
    move = commands.add_parser("move", help="give one owner's rows to another")
    move.add_argument("old")
    move.add_argument("new")
    args = parser.parse_args(argv)
    try:
        if args.command == "owner":
            secret_key = KeySettings().secret_key  # API_KEYS must be valid too
            print("\n".join(owners_of(sys.stdin.readlines(), secret_key)))
        else:
            moved = asyncio.run(_move(args.old, args.new))
            counts = ", ".join(f"{n} {table.replace('_', ' ')}" for table, n in moved.items())
            print(f"moved from {args.old!r} to {args.new!r}: {counts}")
    except (ConfigError, ValidationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
