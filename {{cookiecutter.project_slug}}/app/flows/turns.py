"""The one place that builds a turn of the agent, for every way in.

The interactive message, the background run, the OpenAI-compatible endpoint and the AG-UI
stream all get their turn here, so a tool, a bound or a provider added once reaches all of them.
"""

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agent.loop import Recorder, Turn
from app.agent.registry import registry_for
from app.conversations import service as conversations
from app.conversations.models import Conversation
from app.core.config import Settings
from app.core.metrics import Metrics
from app.llm.base import ChatMessage, LLMProvider


@dataclass(frozen=True, slots=True)
class Agent:
    """What a turn needs from its process: settings, database, model and metrics."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    llm: LLMProvider
    metrics: Metrics

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
        registry = registry_for(config, self.metrics)
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
