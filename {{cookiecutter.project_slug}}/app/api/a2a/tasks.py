"""A task as A2A shows it, built from its run: its state, its status message (the calls a
waiting task asks about, a failure's reason) and the answer as its artifact; and each of the
run's events as the A2A events it stands for.

Both are built from what the run stored, so a task read twice, or followed again from its
snapshot, tells the same story: a stream resumes after the snapshot with nothing twice."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from a2a.helpers.proto_helpers import new_data_part
from a2a.types.a2a_pb2 import (
    Artifact,
    Message,
    Part,
    Role,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)

from app.llm.base import ToolCall
from app.runs.models import Run, RunEvent

STATES: dict[str, TaskState] = {
    "queued": TaskState.TASK_STATE_SUBMITTED,
    "running": TaskState.TASK_STATE_WORKING,
    "awaiting_approval": TaskState.TASK_STATE_INPUT_REQUIRED,
    "succeeded": TaskState.TASK_STATE_COMPLETED,
    "failed": TaskState.TASK_STATE_FAILED,
    "cancelled": TaskState.TASK_STATE_CANCELED,
}
# Where a task's stream ends: A2A closes it on a terminal or an interrupted state.
ENDS = frozenset({"awaiting_approval", "succeeded", "failed", "cancelled"})
ANSWER = "answer"
# In each event's metadata: the run event it stands for (in a task's, the last one it holds),
# as GET /v1/runs/{id}/events numbers them.
EVENT_ID = "run_event_id"
HOW_TO_DECIDE = (
    'Reply in this task with "yes" to approve every call or "no" to deny them, or with data '
    'parts {"tool_call_id": ..., "approved": true|false}.'
)
type Update = TaskStatusUpdateEvent | TaskArtifactUpdateEvent


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A run as read at one instant: its row, its answer, and its last event's id then."""

    run: Run
    answer: str | None
    last_event: int

    @property
    def task(self) -> Task:
        run = self.run
        artifacts = [artifact(self.answer)] if self.answer is not None else []
        status = TaskStatus(state=STATES[run.status], message=_status_message(run))
        return Task(
            id=str(run.id),
            context_id=str(run.conversation_id),
            status=status,
            artifacts=artifacts if run.status == "succeeded" else [],
            metadata={EVENT_ID: self.last_event},
        )


def artifact(answer: str) -> Artifact:
    return Artifact(artifact_id=ANSWER, name=ANSWER, parts=[Part(text=answer)])


def updates(run: Run, event: RunEvent, answer: str | None) -> list[Update]:
    """The A2A events one run event of the run stands for (none for the worker's own
    bookkeeping); answer: the run's, read once its "done" event was."""
    data, message_id = event.data, event_message_id(event)
    match event.name:
        case "running":
            return [_status(run, event, "running", None)]
        case "tool_call" | "tool_result" | "approvals":
            return [_status(run, event, "running", _agent(message_id, [], event.data))]
        case "approval_required":
            calls = [ToolCall(c["id"], c["name"], c["arguments"]) for c in data["calls"]]
            return [_status(run, event, "awaiting_approval", approval_message(message_id, calls))]
        case "error":
            return [_status(run, event, "failed", _agent(message_id, [data["detail"]]))]
        case "done":
            state = data["status"]
            ended = [_status(run, event, state, None)]
            if state == "succeeded" and answer is not None:
                return [_artifact_update(run, event, answer), *ended]
            return ended
    return []


def ends(update: Update) -> bool:
    return isinstance(update, TaskStatusUpdateEvent) and update.status.state in {
        STATES[s] for s in ENDS
    }


def approval_message(message_id: str, calls: Sequence[ToolCall]) -> Message:
    """What a task waiting on approval says: the calls, by id, and how to answer."""
    named = ", ".join(f"{c.name}({c.arguments}) [{c.id}]" for c in calls)
    text = f"Waiting for approval of: {named}. {HOW_TO_DECIDE}"
    pending = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls]
    return _agent(message_id, [text], {"pending_approvals": pending})


def event_message_id(event: RunEvent) -> str:
    return f"{event.run_id}-{event.id}"


def _status_message(run: Run) -> Message | None:
    if run.status == "awaiting_approval":
        return approval_message(f"{run.id}-approval", run.pending_approvals)
    if run.status == "failed":
        return _agent(f"{run.id}-error", [run.error or "failed"])
    return None


def _status(
    run: Run, event: RunEvent, status: str, message: Message | None
) -> TaskStatusUpdateEvent:
    return TaskStatusUpdateEvent(
        task_id=str(run.id),
        context_id=str(run.conversation_id),
        status=TaskStatus(state=STATES[status], message=message),
        metadata={EVENT_ID: event.id},
    )


def _artifact_update(run: Run, event: RunEvent, answer: str) -> TaskArtifactUpdateEvent:
    return TaskArtifactUpdateEvent(
        task_id=str(run.id),
        context_id=str(run.conversation_id),
        artifact=artifact(answer),
        last_chunk=True,
        metadata={EVENT_ID: event.id},
    )


def _agent(message_id: str, texts: list[str], data: dict[str, Any] | None = None) -> Message:
    parts = [Part(text=text) for text in texts]
    if data is not None:
        parts.append(new_data_part(data))
    return Message(message_id=message_id, role=Role.ROLE_AGENT, parts=parts)


def uuid_of(value: str) -> uuid.UUID | None:
    """The id a task or context id names; None for anything else (answered as unknown)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
