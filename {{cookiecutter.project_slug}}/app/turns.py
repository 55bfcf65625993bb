"""The one place that builds a turn of the agent, for every way in (a message, a background
run, the OpenAI-compatible endpoint, AG-UI): the prompt and history it starts from, what its
tools may reach, and where its steps go; so a tool, a bound or a provider added once reaches
all of them. A background run brings its own recorder (runs/recorder.py); a turn a client
waits for uses one of the two here."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agent.loop import (
    Decision,
    DoneEvent,
    ErrorEvent,
    Event,
    Recorder,
    Refusal,
    StopReason,
    Turn,
)
from app.agent.mcp import McpTools
from app.agent.registry import registry_for
from app.agent.tools import ToolContext, ToolError, ToolResult
from app.config.settings import Settings
from app.conversations import service as conversations
from app.conversations.models import Message
from app.conversations.service import model_step
from app.core.metrics import Metrics
from app.files import service as files
from app.files import storage
from app.files.models import StoredFile
from app.llm.base import ChatMessage, Completion, LLMProvider, OutputFormat, ToolCall, ToolSpec
from app.resources import SharedResources
from app.spend.budgets import Account, Spending

type Step = Completion | ToolResult


@dataclass(frozen=True, slots=True)
class _Waited:
    """A turn a client waits for: its model calls answer to the key's budget; a call needing
    approval does not run (nobody can be asked meanwhile: the model is told to use a run)."""

    account: Account

    async def halt(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]
    ) -> StopReason | Refusal | None:
        return await self.account.admit(messages, tools)

    async def release(self) -> None:
        await self.account.release()

    async def decision(self, call: ToolCall) -> Decision | None:
        return "unattended"


@dataclass(frozen=True, slots=True)
class Stored(_Waited):
    """Each step goes straight into the conversation, its model call into the ledger with it."""

    sessionmaker: async_sessionmaker[AsyncSession]
    conversation_id: uuid.UUID

    async def step(self, completion: Completion) -> Message:
        async with self.sessionmaker() as session:
            # Committed with the step.
            await self.account.settle(session, completion)
            return await conversations.add_step(
                session=session, conversation_id=self.conversation_id, **model_step(completion)
            )

    async def result(self, call: ToolCall, result: ToolResult) -> Message:
        async with self.sessionmaker() as session:
            return await conversations.add_step(
                session=session,
                conversation_id=self.conversation_id,
                role="tool",
                content=result.content,
                tool_call_id=call.id,
            )


@dataclass(frozen=True, slots=True)
class Unstored(_Waited):
    """Steps over messages a request carries: handed back, stored nowhere but the ledger."""

    async def step(self, completion: Completion) -> Step:
        await self.account.record(completion)
        return completion

    async def result(self, call: ToolCall, result: ToolResult) -> Step:
        return result


@dataclass(frozen=True, slots=True)
class ReadyTurn[S]:
    """A turn and the history it starts from, ready to run."""

    turn: Turn[S]
    history: list[ChatMessage]

    def events(self, *, stream: bool) -> AsyncIterator[Event[S]]:
        """Run the turn, its model calls streamed or not; its events as they happen."""
        return self.turn.run(self.history, stream=stream)

    async def outcome(self) -> DoneEvent[S] | ErrorEvent:
        """Run the turn without streaming; return how it ended (its one done or error event)."""
        ends = [e async for e in self.events(stream=False) if isinstance(e, DoneEvent | ErrorEvent)]
        return ends[-1]


@dataclass(slots=True)
class TurnBuilder:
    """Builds every turn of the process (one per api or worker process)."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    llm: LLMProvider
    metrics: Metrics
    mcp: McpTools
    spending: Spending = field(init=False)

    def __post_init__(self) -> None:
        self.spending = Spending(self.settings, self.sessionmaker, self.metrics)

    @classmethod
    def over(cls, settings: Settings, resources: SharedResources) -> "TurnBuilder":
        """The process's TurnBuilder, on what its lifespan (api) or serve (worker) opened."""
        return cls(
            settings, resources.sessionmaker, resources.llm, resources.metrics, resources.mcp
        )

    async def prepare[S](
        self,
        session: AsyncSession,
        owner: str,
        conversation_id: uuid.UUID,
        recorder: Recorder[S],
        *,
        steps_taken: int = 0,
        client_tools: Sequence[ToolSpec] = (),
        output: OutputFormat | None = None,
        instructions: str | None = None,
    ) -> ReadyTurn[S]:
        """A turn on the conversation's stored history, its steps going to recorder; a resumed
        run passes the steps its earlier attempts took, so it does not get max_steps anew.
        A client's tools, its output schema and its instructions (added to the system
        prompt for this turn only) are those of the request the turn answers."""
        turn = self._turn(owner, conversation_id, recorder, steps_taken, client_tools, output)
        history = await self._history(session, owner, conversation_id, instructions)
        return ReadyTurn(turn, history)

    def unstored(
        self,
        *,
        account: Account,
        messages: Sequence[ChatMessage],
        client_tools: Sequence[ToolSpec] = (),
        output: OutputFormat | None = None,
    ) -> ReadyTurn[Step]:
        """A turn over a request's messages, on the account's key: stores nothing, reads no
        file; the model may also call client_tools, which end the turn for the client to run."""
        turn = self._turn(account.owner, None, Unstored(account), 0, client_tools, output)
        return ReadyTurn(turn, self._prompt(messages))

    def _turn[S](
        self,
        owner: str,
        conversation_id: uuid.UUID | None,
        recorder: Recorder[S],
        steps_taken: int,
        client_tools: Sequence[ToolSpec] = (),
        output: OutputFormat | None = None,
    ) -> Turn[S]:
        config = self.settings.config.agent
        tools = ToolContext(owner, conversation_id, config, self._attached(owner, conversation_id))
        # Per turn: the MCP servers' tools are listed again in the background.
        registry = registry_for(config, self.metrics, self.mcp.listing)
        steps = max(config.max_steps - steps_taken, 0)
        return Turn(
            self.llm,
            registry,
            tools,
            recorder,
            steps,
            config.require_approval,
            tuple(client_tools),
            output,
        )

    def _attached(
        self, owner: str, conversation_id: uuid.UUID | None
    ) -> Callable[[uuid.UUID], Awaitable[str]]:
        """What read_file may read: the text of a file attached to this conversation and the
        owner's (ToolError alike for any other id); with no conversation, nothing."""

        async def read_attached(file_id: uuid.UUID) -> str:
            if conversation_id is None:
                raise ToolError("no files are attached to this turn")
            async with self.sessionmaker() as session:
                attached = await session.scalar(
                    select(Message.id)
                    .where(
                        Message.conversation_id == conversation_id,
                        Message.file_ids.any_() == file_id,
                    )
                    .limit(1)
                )
                found = await files.get_files(session=session, owner=owner, file_ids=[file_id])
            if attached is None or not found:
                raise ToolError(f"file {file_id} is not attached to this conversation")
            record = found[0]
            if not files.is_text(record.content_type):
                raise ToolError(f"file {record.filename} is {record.content_type}, not text")
            return await self._text(record)

        return read_attached

    async def _history(
        self,
        session: AsyncSession,
        owner: str,
        conversation_id: uuid.UUID,
        instructions: str | None,
    ) -> list[ChatMessage]:
        """The system prompt and the conversation's recent messages, files inlined."""
        llm = self.settings.config.llm
        recent = await conversations.recent_messages(
            session=session, conversation_id=conversation_id, limit=llm.history_limit
        )
        # Every attachment of the history in one query.
        file_ids = [file_id for message in recent for file_id in message.file_ids]
        found = await files.get_files(session=session, owner=owner, file_ids=file_ids)
        by_id = {record.id: record for record in found}
        history = self._prompt([], instructions)
        for message in recent:
            attached = [by_id[file_id] for file_id in message.file_ids if file_id in by_id]
            content = message.content + "".join([await self._inlined(f) for f in attached])
            if message.role == "tool":
                history.append(ChatMessage("tool", content, tool_call_id=message.tool_call_id))
            elif message.role == "assistant":
                history.append(ChatMessage("assistant", content, message.calls))
            else:
                history.append(ChatMessage("user", content))
        return _closed(history)

    def _prompt(
        self, messages: Sequence[ChatMessage], instructions: str | None = None
    ) -> list[ChatMessage]:
        parts = (self.settings.config.llm.system_prompt, instructions)
        system = "\n\n".join(part for part in parts if part)
        return [ChatMessage("system", system), *messages] if system else list(messages)

    async def _inlined(self, record: StoredFile) -> str:
        if not files.is_text(record.content_type):
            return f"\n\n--- file {record.filename} ({record.content_type}, not text) ---"
        return f"\n\n--- file {record.filename} ---\n{await self._text(record)}"

    async def _text(self, record: StoredFile) -> str:
        path = storage.blob_path(self.settings.uploads_dir, record.id)
        return await storage.read_text(path, self.settings.config.llm.max_file_chars)


# The result a call gets in the history when the conversation went on without one.
NO_RESULT = "error: this call got no result (its turn was stopped before it finished)"


def _closed(history: list[ChatMessage]) -> list[ChatMessage]:
    """The history with a result for every call the conversation went on past without one (a
    stream the client cut off mid-call, a client's call never answered): providers refuse a
    call with no result before the next message. The last message's calls stay open: a
    resumed run runs them, a client's come back to it."""
    closed: list[ChatMessage] = []
    waiting: list[str] = []
    for message in history:
        if message.role == "tool":
            waiting = [call_id for call_id in waiting if call_id != message.tool_call_id]
        else:
            closed.extend(ChatMessage("tool", NO_RESULT, tool_call_id=c) for c in waiting)
            waiting = [call.id for call in message.tool_calls]
        closed.append(message)
    return closed
