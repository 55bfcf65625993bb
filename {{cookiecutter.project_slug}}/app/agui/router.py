"""AG-UI endpoint: a conversation's turn for AG-UI clients (HttpAgent)."""

import uuid

from ag_ui.core import RunAgentInput
from fastapi import APIRouter, status
from sse_starlette import EventSourceResponse

from app.agui import run_input
from app.agui.events import Translation, encoded
from app.conversations.router import existing, start_turn
from app.core.streams import EVENT_STREAM, HeldStream
from app.deps import AgentDep, OwnerDep, ResourcesDep, SessionDep

router = APIRouter(tags=["agui"])


@router.post(
    "/conversations/{conversation_id}/agui",
    response_class=EventSourceResponse,
    responses={
        status.HTTP_200_OK: {
            "description": "The run as AG-UI events",
            "content": {EVENT_STREAM: {}},
        },
        status.HTTP_429_TOO_MANY_REQUESTS: {"description": "Too many streams of this key open"},
        status.HTTP_503_SERVICE_UNAVAILABLE: {"description": "Too many streams open"},
    },
)
async def run_agent(
    conversation_id: uuid.UUID,
    body: RunAgentInput,
    session: SessionDep,
    owner: OwnerDep,
    agent: AgentDep,
    resources: ResourcesDep,
) -> EventSourceResponse:
    """Run the agent for an AG-UI client: POST a RunAgentInput whose threadId is the
    conversation's id; its last user message is stored and answered, as AG-UI events."""
    # Another key's conversation answers 404 as an unknown one, whatever the body says.
    conversation = await existing(session, owner, conversation_id)
    run_input.check_thread(body, conversation_id)
    message = run_input.user_message(body)
    # The slot is taken before the message is stored: a refused run changes nothing.
    with resources.turn_streams.holding(owner) as give_back:
        _, history, turn = await start_turn(session, agent, owner, conversation, message)
        run = Translation(body.thread_id, body.run_id, agent.llm.name)
        # A client that goes away cancels the stream, and with it the model call.
        return HeldStream(encoded(turn.run(history, stream=True), run), give_back)
