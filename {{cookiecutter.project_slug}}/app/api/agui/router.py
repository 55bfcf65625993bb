"""AG-UI endpoint: a conversation's turn for AG-UI clients (HttpAgent)."""

from ag_ui.core import RunAgentInput
from fastapi import APIRouter
from sse_starlette import EventSourceResponse

from app.api import sse
from app.api.agui import thread
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
    conversation's id. Its last user message and the tool messages answering the calls of
    its tools (`tools`) are stored, each once by its id (a re-run that sends them again, as a
    regenerate does, stores nothing), and the conversation is answered, as AG-UI events; a
    call of one of its tools ends the run, for the client to run it and run again."""
    # OwnedConversation has answered another key's conversation 404, as an unknown one,
    # whatever the body says; only then is the body's thread compared with it.
    thread.check_thread(body, conversation.id)
    message_id, message = thread.user_message(body)
    client_tools = thread.client_tools(body)
    results = await thread.tool_results(session, conversation.id, body, client_tools)
    run = Translation(body.thread_id, body.run_id, turns.llm.name)
    account = turns.spending.account(owner)
    # The slot is taken before anything is stored: a refused run changes nothing.
    with resources.turn_streams.holding(owner) as give_back:
        if refusal := await account.check():
            # A key whose budget is used up: RUN_ERROR, and nothing stored.
            return sse.HeldStream(encoded(refused(refusal), run), give_back)
        turn = await messages.run_thread(
            turns=turns,
            session=session,
            conversation=conversation,
            account=account,
            results=results,
            data=message,
            client_id=message_id,
            client_tools=client_tools,
        )
        return sse.HeldStream(encoded(turn.events(stream=True), run), give_back)
