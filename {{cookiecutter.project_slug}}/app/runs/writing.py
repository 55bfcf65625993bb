"""A background run's write: one statement that renews the run's lease, only while the claim
is still the worker's, and stores what the write carries with it.

A busy worker spends its time on round trips, so each write of a run is one statement in
autocommit (a statement is atomic on its own): the UPDATE of the run, which finds the run
only if the claim still holds, and the rows it carries (messages, events, ledger rows), each
inserted FROM the UPDATE's result, so that a lost claim writes none of them. Where a write
must share a transaction (a hold on a budget), the caller opens one.

SQL text rather than the ORM: the rows travel as JSON arrays (one parameter per table,
whatever their number), which keeps the statement one and the same, prepared once per
connection."""

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic_core import to_json
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.db import utcnow
from app.llm.base import Usage

# The run's columns change only as the write says: a NULL parameter leaves a column as it is
# (the lease: NULL ends it). Holds of the run (holder = its id) go with a model step's write.
# Events keep the order they were added in (their ids are the order clients read them in).
WRITE = text("""
WITH renewed AS (
    UPDATE runs SET
        lease_until = clock_timestamp() + CAST(:lease AS interval),
        status = coalesce(CAST(:status AS varchar), status),
        attempts = attempts - CAST(:given_back AS integer),
        stop_reason = coalesce(CAST(:stop_reason AS varchar), stop_reason),
        error = coalesce(CAST(:error AS text), error),
        queued_at = CASE WHEN CAST(:status AS varchar) = 'queued'
            THEN clock_timestamp() ELSE queued_at END,
        finished_at = CASE WHEN CAST(:status AS varchar) IN ('succeeded', 'failed', 'cancelled')
            THEN clock_timestamp() ELSE finished_at END,
        approvals = (approvals - CAST(:answered AS text[])) || CAST(:waiting AS jsonb),
        prompt_tokens = prompt_tokens + CAST(:prompt_tokens AS integer),
        completion_tokens = completion_tokens + CAST(:completion_tokens AS integer),
        provider = coalesce(CAST(:provider AS varchar), provider),
        model = coalesce(CAST(:model AS varchar), model)
    WHERE id = CAST(:run_id AS uuid)
        AND attempts = CAST(:attempt AS integer)
        AND status = 'running'
    RETURNING id, conversation_id, cancel_requested
), released AS (
    DELETE FROM spend_holds
    WHERE CAST(:releasing AS boolean) AND holder = CAST(:run_id AS uuid)
        AND EXISTS (SELECT FROM renewed)
), stored AS (
    INSERT INTO messages (
        id, conversation_id, run_id, role, content, file_ids, tool_calls, tool_call_id,
        provider, model, prompt_tokens, completion_tokens, cache_read_tokens,
        cache_write_tokens, created_at
    )
    SELECT m.id, renewed.conversation_id, renewed.id, m.role, m.content, m.file_ids,
        m.tool_calls, m.tool_call_id, m.provider, m.model, m.prompt_tokens,
        m.completion_tokens, m.cache_read_tokens, m.cache_write_tokens, m.created_at
    FROM renewed, jsonb_populate_recordset(NULL::messages, CAST(:messages AS jsonb)) AS m
), told AS (
    INSERT INTO run_events (run_id, name, data, created_at)
    SELECT renewed.id, e.event ->> 'name', e.event -> 'data',
        CAST(e.event ->> 'created_at' AS timestamptz)
    FROM renewed, jsonb_array_elements(CAST(:events AS jsonb)) WITH ORDINALITY AS e(event, n)
    ORDER BY e.n
), spent AS (
    INSERT INTO model_calls (
        owner, provider, model, prompt_tokens, completion_tokens, cache_read_tokens,
        cache_write_tokens, cost_usd, created_at
    )
    SELECT c.owner, c.provider, c.model, c.prompt_tokens, c.completion_tokens,
        c.cache_read_tokens, c.cache_write_tokens, c.cost_usd, c.created_at
    FROM renewed, jsonb_populate_recordset(NULL::model_calls, CAST(:calls AS jsonb)) AS c
)
SELECT cancel_requested FROM renewed
""")


@dataclass
class Write:
    """What one write of a run stores, and how it changes the run."""

    # Rows, each with its table's columns (messages: but the conversation and the run, which
    # the statement takes from the run it renewed).
    messages: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    # Approvals used up by the results stored (their call ids); approvals asked for.
    answered: list[str] = field(default_factory=list)
    waiting: dict[str, Any] = field(default_factory=dict)
    # The tokens of the model step stored, and who answered it.
    usage: Usage = field(default_factory=Usage)
    provider: str | None = None
    model: str | None = None
    # Whether the run's hold on its key's budget goes (its model call's answer is stored).
    releasing: bool = False
    # How the write ends the claim: a new status, the attempt not counted (given back: 1),
    # and the lease kept (True) or ended.
    status: str | None = None
    given_back: int = 0
    stop_reason: str | None = None
    error: str | None = None
    keeps_lease: bool = True

    def __bool__(self) -> bool:
        """Whether it stores anything beyond the lease."""
        return bool(self.messages or self.events or self.calls)

    def event(self, name: str, data: dict[str, Any]) -> None:
        self.events.append({"name": name, "data": data, "created_at": utcnow()})

    def params(self, run_id: uuid.UUID, attempt: int, lease: timedelta) -> dict[str, Any]:
        return {
            "run_id": run_id,
            "attempt": attempt,
            "lease": lease if self.keeps_lease else None,
            "status": self.status,
            "given_back": self.given_back,
            "stop_reason": self.stop_reason,
            "error": self.error,
            "answered": self.answered,
            "waiting": _json(self.waiting),
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
            "provider": self.provider,
            "model": self.model,
            "releasing": self.releasing,
            "messages": _json(self.messages),
            "events": _json(self.events),
            "calls": _json(self.calls),
        }


async def write(
    connection: AsyncConnection, run_id: uuid.UUID, attempt: int, lease: timedelta, done: Write
) -> bool | None:
    """Carry out the write; whether a cancel of the run was asked for, or None: the claim no
    longer holds, and nothing was written."""
    row = (await connection.execute(WRITE, done.params(run_id, attempt, lease))).first()
    return None if row is None else bool(row.cancel_requested)


def _json(value: Any) -> str:
    # pydantic-core writes UUIDs, datetimes and Decimals (as strings) itself, and fast.
    return to_json(value).decode()
