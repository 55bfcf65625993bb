"""OpenAI-compatible endpoints: the agent as one model, for OpenAI clients and SDKs."""

from fastapi import APIRouter
from sse_starlette import EventSourceResponse
from starlette.responses import JSONResponse

from app.agent.loop import ErrorEvent
from app.api import sse
from app.api.openai import errors, wire
from app.api.openai.schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    ModelCard,
    ModelList,
)
from app.core.metadata import project_metadata
from app.deps import OwnerDep, ResourcesDep, SettingsDep, TurnsDep

router = APIRouter(tags=["openai"])


@router.get("/models", responses=errors.documented(401, 429, 503))
async def list_models(settings: SettingsDep) -> ModelList:
    """The agent, as the one model this endpoint serves (OpenAI's list format)."""
    card = ModelCard(id=settings.config.openai_api.model_name, owned_by=project_metadata()[0])
    return ModelList(data=[card])


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses=errors.documented(
        401,
        404,
        422,
        429,
        502,
        503,
        stream=sse.documented('With "stream": true, chat.completion.chunk events, then [DONE]'),
    ),
)
async def chat_completions(
    body: ChatCompletionRequest, owner: OwnerDep, turns: TurnsDep, resources: ResourcesDep
) -> ChatCompletion | JSONResponse | EventSourceResponse:
    """One turn of the agent, its tools included, over the messages sent; nothing is stored
    (OpenAI's chat completions; "stream": true streams it). A call of one of the client's
    `tools` ends the turn: it comes back as tool_calls, finish_reason "tool_calls". A
    `response_format` asks the model for JSON of that schema."""
    config = turns.settings.config.openai_api
    if body.model != config.model_name:
        return wire.model_not_found(body.model, config.model_name)
    wire.check_chat(body, config.max_messages)
    client_tools = wire.client_tools(body)
    account = turns.spending.account(owner)
    if refusal := await account.check():
        return wire.failed(ErrorEvent(refusal.detail, refusal))
    turn = turns.unstored(
        account=account,
        messages=[wire.chat_message(m) for m in body.messages],
        client_tools=client_tools,
        output=wire.output_format(body),
    )
    reply = wire.Reply.to(config.model_name)
    if body.stream:
        usage = bool(body.stream_options and body.stream_options.include_usage)
        with resources.turn_streams.holding(owner) as give_back:
            chunks = wire.chunks(turn.events(stream=True), reply, include_usage=usage)
            return sse.HeldStream(chunks, give_back)
    ended = await turn.outcome()
    if isinstance(ended, ErrorEvent):
        return wire.failed(ended)
    return reply.completion(ended)
