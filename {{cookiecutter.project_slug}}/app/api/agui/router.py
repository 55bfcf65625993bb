"""AG-UI endpoint: a conversation's turn for AG-UI clients (HttpAgent)."""

import uuid

from ag_ui.core import RunAgentInput, TextPart, UserMessage
from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sse_starlette import EventSourceResponse

from app.api import sse
from app.api.agui.events import Translation, encoded, refused
from app.api.errors import field_error
from app.conversations import service as conversations
from app.conversations.models import CLIENT_ID_CHARS
from app.conversations.schemas import MessageCreate
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
    conversation's id; its last user message is stored (once: a re-run that sends it again,
    as a regenerate does, stores nothing) and answered, as AG-UI events."""
    # OwnedConversation has answered another key's conversation 404, as an unknown one,
    # whatever the body says; only then is the body's thread compared with it.
    _check_thread(body, conversation.id)
    message_id, message = _user_message(body)
    run = Translation(body.thread_id, body.run_id, turns.llm.name)
    account = turns.spending.account(owner)
    # The slot is taken before the message is stored: a refused run changes nothing.
    with resources.turn_streams.holding(owner) as give_back:
        if refusal := await account.check():
            # A key whose budget is used up: RUN_ERROR, and nothing stored.
            return sse.HeldStream(encoded(refused(refusal), run), give_back)
        if await conversations.has_client_message(
            session=session, conversation_id=conversation.id, client_id=message_id
        ):
            turn = await messages.answer(
                turns=turns, session=session, conversation=conversation, account=account
            )
        else:
            _, turn = await messages.send(
                turns=turns,
                session=session,
                conversation=conversation,
                data=message,
                account=account,
                client_id=message_id,
            )
        return sse.HeldStream(encoded(turn.events(stream=True), run), give_back)


def _check_thread(body: RunAgentInput, conversation_id: uuid.UUID) -> None:
    """Refuse a threadId other than the conversation's id: it is not the thread stored."""
    try:
        same = uuid.UUID(body.thread_id) == conversation_id
    except ValueError:
        same = False
    if not same:
        detail = f"must be the id of the conversation in the path, {conversation_id}"
        raise RequestValidationError([field_error("thread_mismatch", ("threadId",), detail)])


def _user_message(body: RunAgentInput) -> tuple[str, MessageCreate]:
    """The last user message of the run, its id and the message to store and answer: a client
    sends its whole view of the thread, but the stored conversation is the history the agent
    sees."""
    users = [(i, m) for i, m in enumerate(body.messages) if isinstance(m, UserMessage)]
    if not users:
        error = field_error("missing", ("messages",), "must hold a user message")
        raise RequestValidationError([error])
    index, message = users[-1]
    if len(message.id) > CLIENT_ID_CHARS:
        detail = f"String should have at most {CLIENT_ID_CHARS} characters"
        raise RequestValidationError([field_error("too_long", ("messages", index, "id"), detail)])
    content = message.content
    if not isinstance(content, str):
        # Only text parts reach the model; images and files are not taken here.
        content = "".join(part.text for part in content if isinstance(part, TextPart))
    try:
        return message.id, MessageCreate(content=content)
    except ValidationError as exc:
        location = ("messages", index, "content")
        errors = [field_error(e["type"], location, e["msg"]) for e in exc.errors()]
        raise RequestValidationError(errors) from None
