"""A PydanticAI agent with this service as its OpenAI model: structured output and the agent's
own (client) tools over /v1/chat/completions, as a PydanticAI user would run it.

The echo model calls a tool for each `/tool NAME {...}` line of the prompt; asked for
structured output, it answers JSON valid for the schema, its strings its usual reply.
"""

from typing import Any

import pytest
from httpx import AsyncClient
from pydantic import BaseModel
from pydantic_ai import Agent, NativeOutput
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from tests.test_openai_api import SYSTEM_PROMPT, sdk

ASK_POPULATION = 'Paris\n/tool population {"city": "Paris"}'
RUNS = pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_stream"])


class City(BaseModel):
    name: str
    country: str


def agent_on(client: AsyncClient, output_type: Any) -> Agent[None, Any]:
    """A PydanticAI agent whose model is the service's `agent`, on the openai SDK."""
    model = OpenAIChatModel("agent", provider=OpenAIProvider(openai_client=sdk(client)))
    return Agent(model, output_type=output_type)


def with_population(agent: Agent[None, Any]) -> list[str]:
    """Give the agent a tool of its own; return the cities it was called for."""
    asked: list[str] = []

    @agent.tool_plain
    def population(city: str) -> int:
        """The number of people living in a city."""
        asked.append(city)
        return 2_100_000

    return asked


async def output_of(agent: Agent[None, Any], prompt: str, *, streamed: bool) -> Any:
    if not streamed:
        return (await agent.run(prompt)).output
    async with agent.run_stream(prompt) as run:
        return await run.get_output()


@RUNS
async def test_native_output_is_a_valid_city(client: AsyncClient, streamed: bool) -> None:
    city = await output_of(agent_on(client, NativeOutput(City)), "Paris", streamed=streamed)

    # Only an answer held to the schema is a City: the echo's text otherwise.
    assert city == City(name=f"[{SYSTEM_PROMPT}] Paris", country=f"[{SYSTEM_PROMPT}] Paris")


@RUNS
async def test_a_tool_of_the_agent_runs_once_and_its_result_is_in_the_city(
    client: AsyncClient, streamed: bool
) -> None:
    agent = agent_on(client, NativeOutput(City))
    asked = with_population(agent)

    city = await output_of(agent, ASK_POPULATION, streamed=streamed)

    assert asked == ["Paris"]
    assert isinstance(city, City)
    assert city.name == f"[{SYSTEM_PROMPT}] Paris\npopulation: 2100000"


async def test_text_output_shows_the_tools_result(client: AsyncClient) -> None:
    agent = agent_on(client, str)
    asked = with_population(agent)

    text = (await agent.run(ASK_POPULATION)).output

    assert asked == ["Paris"]
    assert text == f"[{SYSTEM_PROMPT}] Paris\npopulation: 2100000"


async def test_tool_output_comes_from_the_final_result_call_the_prompt_asks_for(
    client: AsyncClient,
) -> None:
    """PydanticAI's default output mode offers a final_result tool, a client tool here: the
    echo model calls it when a line of the prompt says so, after the other tools."""
    agent = agent_on(client, City)
    asked = with_population(agent)
    france = City(name="Paris", country="France")
    prompt = f"{ASK_POPULATION}\n/tool final_result {france.model_dump_json()}"

    city = (await agent.run(prompt)).output

    assert asked == ["Paris"]
    assert city == france
