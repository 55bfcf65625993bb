"""Sending a message that a client waits for: stored, then answered by a turn. The JSON
answer, the SSE stream and AG-UI all send it here; they differ only in how they relay it."""

from sqlalchemy.ext.asyncio import AsyncSession

from app.conversations import service as conversations
from app.conversations.models import Conversation, Message
from app.conversations.schemas import MessageCreate
from app.spend.budgets import Account
from app.turns import ReadyTurn, Stored, TurnBuilder


async def send(
    *,
    turns: TurnBuilder,
    session: AsyncSession,
    conversation: Conversation,
    data: MessageCreate,
    account: Account,
    client_id: str | None = None,
) -> tuple[Message, ReadyTurn[Message]]:
    """Store the user's message (UnknownFilesError: a file id is not the owner's, nothing stored);
    return it and the turn answering it, steps stored, model calls on the owner's account."""
    message = await conversations.add_user_message(
        session=session, conversation=conversation, data=data, client_id=client_id
    )
    return message, await answer(
        turns=turns, session=session, conversation=conversation, account=account
    )


async def answer(
    *, turns: TurnBuilder, session: AsyncSession, conversation: Conversation, account: Account
) -> ReadyTurn[Message]:
    """The turn answering the conversation as stored (a re-run that brings no new message)."""
    stored = Stored(account, turns.sessionmaker, conversation.id)
    turn = await turns.prepare(session, conversation, stored)
    # Hand the connection back now rather than hold it through the model's calls; each
    # step is stored with a session of its own.
    await session.close()
    return turn
