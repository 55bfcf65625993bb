"""The one place that builds a turn of the agent, for every way in.

The interactive message, the background run, the OpenAI-compatible endpoint and the AG-UI
stream all get their turn here, so a tool, a bound or a provider added once reaches all of them.
"""

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

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
from app.agent.tools import ToolResult
from app.config.settings import Settings
from app.conversations import service as conversations
from app.conversations.models import Conversation
from app.core.metrics import Metrics
from app.llm.base import ChatMessage, Completion, LLMProvider, ToolCall, ToolSpec
from app.spend.budgets import Account, Spending

type Step = Completion | ToolResult


@dataclass(frozen=True, slots=True)
class Unstored:
    """A turn over messages a request carries: its steps are handed back, stored nowhere
    but in the owner's ledger."""

    account: Account

    async def step(self, completion: Completion) -> Completion | ToolResult:
        await self.account.record(completion)
        return completion

    async def result(self, call: ToolCall, result: ToolResult) -> Completion | ToolResult:
        return result

    async def halt(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]
    ) -> StopReason | Refusal | None:
        return await self.account.admit(messages, tools)

    async def release(self) -> None:
        await self.account.release()

    async def decision(self, call: ToolCall) -> Decision | None:
        # The client waits for the answer, not for a person: a call that needs approval does
        # not run, and the model is told it takes a background run.
        return "unattended"


@dataclass(frozen=True, slots=True)
class ReadyTurn[S]:
    """A turn and the history it starts from, ready to run."""

    turn: Turn[S]
    history: list[ChatMessage]

    def events(self, *, stream: bool) -> AsyncIterator[Event[S]]:
        """Run the turn, its model calls streamed or not; its events as they happen."""
        return self.turn.run(self.history, stream=stream)

    async def outcome(self) -> DoneEvent[S] | ErrorEvent:
        """Run the turn without streaming; return how it ended."""
        ended: DoneEvent[S] | ErrorEvent | None = None
        async for event in self.events(stream=False):
            if isinstance(event, DoneEvent | ErrorEvent):
                ended = event
        if ended is None:
            raise AssertionError("a turn always ends with a done or an error event")
        return ended


@dataclass(frozen=True, slots=True)
class Agent:
    """What a turn needs from its process: settings, database, model, metrics, MCP tools."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    llm: LLMProvider
    metrics: Metrics
    mcp: McpTools

    async def prepare[S](
        self,
        session: AsyncSession,
        conversation: Conversation,
        recorder: Recorder[S],
        *,
        steps_taken: int = 0,
    ) -> ReadyTurn[S]:
        """A turn on the conversation's stored history, its steps going to recorder.

        A background run resumed by another attempt passes the steps its earlier attempts
        took: they count, so that a retried run does not get max_steps anew.
        """
        history = await self.history(session, conversation)
        steps = max(self.settings.config.agent.max_steps - steps_taken, 0)
        turn = self.turn(
            owner=conversation.owner,
            conversation_id=conversation.id,
            recorder=recorder,
            max_steps=steps,
        )
        return ReadyTurn(turn, history)

    @property
    def spending(self) -> Spending:
        """The ledger the turns' model calls are written to, and the budgets they answer to."""
        return Spending.of(self.settings, self.sessionmaker, self.metrics)

    def unstored(self, *, account: Account, messages: Sequence[ChatMessage]) -> ReadyTurn[Step]:
        """A turn over the messages a request carries, on the account's key; nothing is
        stored, and its tools reach no attached file."""
        turn = self.turn(owner=account.owner, conversation_id=None, recorder=Unstored(account))
        return ReadyTurn(turn, self.prompt(messages))

    def turn[S](
        self,
        *,
        owner: str,
        conversation_id: uuid.UUID | None,
        recorder: Recorder[S],
        max_steps: int | None = None,
    ) -> Turn[S]:
        """A turn for owner; its tools reach only that owner's rows (and, with no
        conversation, no attached files at all)."""
        config = self.settings.config.agent
        tools = conversations.tool_context(
            owner=owner,
            conversation_id=conversation_id,
            sessionmaker=self.sessionmaker,
            settings=self.settings,
        )
        registry = registry_for(config, self.metrics, self.mcp.listing)
        steps = config.max_steps if max_steps is None else max_steps
        return Turn(self.llm, registry, tools, recorder, steps, config.require_approval)

    async def history(self, session: AsyncSession, conversation: Conversation) -> list[ChatMessage]:
        """The system prompt and the conversation's recent messages, files inlined."""
        return await conversations.build_context(
            session=session,
            conversation=conversation,
            llm_config=self.settings.config.llm,
            uploads_dir=self.settings.uploads_dir,
        )

    def prompt(self, messages: Sequence[ChatMessage]) -> list[ChatMessage]:
        """The system prompt, then the messages a request carries (no stored history)."""
        system = self.settings.config.llm.system_prompt
        return [ChatMessage("system", system), *messages] if system else list(messages)
