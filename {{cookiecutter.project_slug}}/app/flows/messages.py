"""Sending a message that a client waits for: stored, then answered by a turn. The JSON
answer, the SSE stream and AG-UI all send it here; they differ only in how they relay it."""

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.conversations import service as conversations
from app.conversations.models import Conversation, Message
from app.conversations.schemas import MessageCreate
from app.conversations.service import ClientResult
from app.llm.base import ToolSpec
from app.spend.budgets import Account
from app.turns import ReadyTurn, Stored, TurnBuilder


async def send(
    *,
    turns: TurnBuilder,
    session: AsyncSession,
    conversation: Conversation,
    data: MessageCreate,
    account: Account,
) -> tuple[Message, ReadyTurn[Message]]:
    """Store the user's message (UnknownFilesError: a file id is not the owner's, nothing stored);
    return it and the turn answering it, steps stored, model calls on the owner's account."""
    message = await conversations.add_user_message(
        session=session, conversation=conversation, data=data
    )
    return message, await answer(
        turns=turns, session=session, conversation=conversation, account=account
    )


async def run_thread(
    *,
    turns: TurnBuilder,
    session: AsyncSession,
    conversation: Conversation,
    account: Account,
    results: Sequence[ClientResult],
    data: MessageCreate,
    client_id: str,
    client_tools: Sequence[ToolSpec],
) -> ReadyTurn[Message]:
    """A client's run of its thread (AG-UI's): the results of its tools' calls it brings, then
    its last user message, each stored once by the id the client gave it (a re-run stores
    nothing again); the turn answering the conversation as stored, which may call
    client_tools."""
    await conversations.add_client_results(
        session=session, conversation_id=conversation.id, results=results
    )
    await conversations.add_client_message(
        session=session, conversation=conversation, data=data, client_id=client_id
    )
    return await answer(
        turns=turns,
        session=session,
        conversation=conversation,
        account=account,
        client_tools=client_tools,
    )


async def answer(
    *,
    turns: TurnBuilder,
    session: AsyncSession,
    conversation: Conversation,
    account: Account,
    client_tools: Sequence[ToolSpec] = (),
) -> ReadyTurn[Message]:
    """The turn answering the conversation as stored."""
    stored = Stored(account, turns.sessionmaker, conversation.id)
    turn = await turns.prepare(
        session, conversation.owner, conversation.id, stored, client_tools=client_tools
    )
    # Hand the connection back now rather than hold it through the model's calls; each
    # step is stored with a session of its own.
    await session.close()
    return turn
