"""AG-UI endpoint: a conversation's turn for AG-UI clients (HttpAgent)."""

from ag_ui.core import RunAgentInput
from fastapi import APIRouter
from sse_starlette import EventSourceResponse

from app.api import sse
from app.api.agui import run_input
from app.api.agui.events import Translation, encoded, refused
from app.deps import OwnedConversation, OwnerDep, ResourcesDep, SessionDep, TurnsDep
from app.flows import messages

router = APIRouter(tags=["agui"])


@router.post(
    "/conversations/{conversation_id}/agui",
    response_class=EventSourceResponse,
    responses=sse.documented("The run as AG-UI events"),
)
async def run_agent(
    conversation: OwnedConversation,
    body: RunAgentInput,
    session: SessionDep,
    owner: OwnerDep,
    turns: TurnsDep,
    resources: ResourcesDep,
) -> EventSourceResponse:
    """Run the agent for an AG-UI client: POST a RunAgentInput whose threadId is the
    conversation's id; its last user message is stored and answered, as AG-UI events."""
    # OwnedConversation has answered another key's conversation 404, as an unknown one,
    # whatever the body says; only then is the body's thread compared with it.
    run_input.check_thread(body, conversation.id)
    message = run_input.user_message(body)
    run = Translation(body.thread_id, body.run_id, turns.llm.name)
    account = turns.spending.account(owner)
    # The slot is taken before the message is stored: a refused run changes nothing.
    with resources.turn_streams.holding(owner) as give_back:
        if refusal := await account.check():
            # A key whose budget is used up: RUN_ERROR, and nothing stored.
            return sse.HeldStream(encoded(refused(refusal), run), give_back)
        sent = await messages.send(
            turns=turns, session=session, conversation=conversation, data=message, account=account
        )
        return sse.HeldStream(encoded(sent.turn.events(stream=True), run), give_back)
