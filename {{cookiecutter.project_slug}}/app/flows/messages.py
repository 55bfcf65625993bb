"""Sending a message that a client waits for: stored, then answered by a turn.

The JSON answer, the SSE stream and AG-UI all send their message here; they differ only in
how they relay the turn's events.
"""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.conversations import service as conversations
from app.conversations.models import Conversation, Message
from app.conversations.schemas import MessageCreate
from app.spend.budgets import Account
from app.turns import ReadyTurn, TurnBuilder


@dataclass(frozen=True, slots=True)
class Sent:
    """The user's message, as stored, and the turn that answers it."""

    message: Message
    turn: ReadyTurn[Message]


async def send(
    *,
    turns: TurnBuilder,
    session: AsyncSession,
    conversation: Conversation,
    data: MessageCreate,
    account: Account,
) -> Sent:
    """Store the user's message (UnknownFilesError: a file id is not the owner's, nothing
    stored) and prepare the turn that answers it, its steps stored in the conversation and
    its model calls on the account (the conversation owner's)."""
    message = await conversations.add_user_message(
        session=session, conversation=conversation, data=data
    )
    turn = await turns.prepare(session, conversation, turns.stored(conversation, account))
    # Hand the connection back now rather than hold it through the model's calls; each
    # step is stored with a session of its own.
    await session.close()
    return Sent(message, turn)
