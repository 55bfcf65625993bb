"""The bounds on the run event streams a client can hold open: per key (429) and per
process (503), each with Retry-After, each slot given back when its stream ends."""

import asyncio
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient

from tests.conftest import make_settings, new_conversation_id, serve
from tests.metrics import admission_refusals, scrape

# Event streams poll with the app's own engine, each with its own connection (the test's one
# connection cannot serve two at once), so what these tests store is committed: under keys
# of their own, and deleted at the end (the worker's sweep would find the queued runs).
STREAM_KEYS = ("stream-key-one", "stream-key-two")


async def _streams_at_once(
    tmp_path: Path, migrated: str, redis_url: str, worker: dict[str, Any], per_key: int
) -> tuple[list[int], list[int], list[Any], dict[str, float], int]:
    """Open per_key + 1 streams of each key at once on runs no worker executes; each that is
    let in stays open events_stream_seconds (3 s, ample for the others to arrive meanwhile).
    Return the statuses by key, the refused answers, the refusals counted, and the status of
    a stream opened after they all ended (on a run cancelled then: it ends at once)."""
    settings = make_settings(
        tmp_path,
        migrated,
        redis_url,
        api_keys=",".join(STREAM_KEYS),
        worker={"events_stream_seconds": 3, **worker},
    )
    headers = [{"Authorization": f"Bearer {key}"} for key in STREAM_KEYS]
    async for client in serve(settings, None, api_key=STREAM_KEYS[0]):
        urls, conversations = [], []
        try:
            for auth in headers:
                conversations.append((await new_conversation_id(client, headers=auth), auth))
                run = await client.post(
                    f"/v1/conversations/{conversations[-1][0]}/runs",
                    json={"content": "waits in the queue"},
                    headers=auth,
                )
                urls.append(f"/v1/runs/{run.json()['id']}/events")
            answers = await asyncio.gather(
                *(
                    client.get(url, headers=auth)
                    for url, auth in zip(urls, headers, strict=True)
                    for _ in range(per_key + 1)
                )
            )
            # Its run cancelled first, the stream answers at once instead of after 3 s.
            await client.post(urls[0].replace("/events", "/cancel"), headers=headers[0])
            after = await client.get(urls[0], headers=headers[0])
            refusals = admission_refusals(await scrape(client))
        finally:
            for conversation_id, auth in conversations:  # and their runs, by cascade
                await client.delete(f"/v1/conversations/{conversation_id}", headers=auth)
    mine = sorted(a.status_code for a in answers[: per_key + 1])
    theirs = sorted(a.status_code for a in answers[per_key + 1 :])
    refused = [a for a in answers if a.status_code != 200]
    return mine, theirs, refused, refusals, after.status_code


@pytest.mark.usefixtures("redis")
async def test_one_key_cannot_hold_every_event_stream(
    tmp_path: Path, migrated: str, redis_url: str
) -> None:
    mine, theirs, refused, refusals, after = await _streams_at_once(
        tmp_path, migrated, redis_url, {"max_event_streams_per_key": 2}, per_key=2
    )

    assert (mine, theirs) == ([200, 200, 429], [200, 200, 429])
    assert {r.headers["Retry-After"] for r in refused} == {"1"}
    assert refused[0].json()["detail"] == (
        "too many event streams of this key open (limit 2); retry shortly"
    )
    assert refusals == {"key_event_streams": 2}
    assert after == 200  # the streams that ended gave their slots back


@pytest.mark.usefixtures("redis")
async def test_event_streams_past_the_process_bound_get_503(
    tmp_path: Path, migrated: str, redis_url: str
) -> None:
    mine, theirs, refused, refusals, after = await _streams_at_once(
        tmp_path,
        migrated,
        redis_url,
        {"max_event_streams": 3, "max_event_streams_per_key": 2},
        per_key=1,
    )

    assert sorted(mine + theirs) == [200, 200, 200, 503]
    assert [(r.headers["Retry-After"], r.json()["detail"]) for r in refused] == [
        ("1", "too many event streams open (limit 3); retry shortly")
    ]
    assert refusals == {"event_streams": 1}
    assert after == 200


async def test_every_streaming_route_documents_its_refusals(client: AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    streaming = {
        f"{method.upper()} {path}": operation["responses"]
        for path, operations in paths.items()
        for method, operation in operations.items()
        if "text/event-stream" in operation["responses"].get("200", {}).get("content", {})
    }

    assert len(streaming) == 6, sorted(streaming)
    assert {
        route: {code: responses.get(code, {}).get("description") for code in ("429", "503")}
        for route, responses in streaming.items()
    } == {
        route: {
            # A turn's stream (not the events of a run or a response, read with GET) is
            # refused too while the key's budget is used up.
            "429": "Too many streams of this key open"
            + ("" if route.startswith("GET ") else ", or its budget used up"),
            "503": "Too many streams open",
        }
        for route in streaming
    }
