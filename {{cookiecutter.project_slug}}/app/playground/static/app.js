// The playground: POST /v1/conversations, then each message either to .../messages, its turn
// streamed as Server-Sent Events, or (Run in background) to .../runs, whose events are then
// followed at /v1/runs/{id}/events. Events are read from fetch's body: EventSource can send
// no key. The key stays in this page's memory only: nothing stores it, so closing the tab
// forgets it.
"use strict";

const $ = (id) => document.getElementById(id);
let conversation = null;
// The turn in progress: its AbortController, and its run's id once a run was started.
let turn = null;

function show(kind, text) {
  const entry = document.createElement("div");
  entry.className = `entry ${kind}`;
  entry.textContent = text; // always text: model output never becomes markup
  $("log").append(entry);
  entry.scrollIntoView({ block: "end" });
  return entry;
}

async function call(path, { body, accept = "application/json", headers = {}, signal } = {}) {
  const response = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: {
      Authorization: `Bearer ${$("key").value.trim()}`,
      "Content-Type": "application/json",
      Accept: accept,
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = JSON.stringify((await response.json()).detail); } catch { /* not JSON */ }
    const wait = response.headers.get("Retry-After");
    throw new Error(`HTTP ${response.status}: ${detail}${wait ? ` (retry after ${wait} s)` : ""}`);
  }
  return response;
}

// [event, data, id] of each event (id null where the stream gives none).
async function* events(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replaceAll("\r\n", "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const fields = {};
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue; // keep-alive comment
        const colon = line.indexOf(": ");
        if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 2);
      }
      if (fields.event) yield [fields.event, JSON.parse(fields.data), fields.id ?? null];
    }
  }
}

function showTool(name, data) {
  if (name === "tool_call") show("tool-call", `→ ${data.name} ${data.arguments}`);
  else show("tool-result", `← ${data.name}: ${data.content}`);
}

async function sendMessage(text, signal) {
  const response = await call(`/v1/conversations/${conversation}/messages`,
    { body: { content: text }, accept: "text/event-stream", signal });
  $("message").value = "";
  let reply = null;
  for await (const [name, data] of events(response)) {
    if (name === "token") {
      reply = reply ?? show("reply", "");
      reply.textContent += data.content;
    } else if (name === "tool_call" || name === "tool_result") {
      showTool(name, data);
      reply = null;
    } else if (name === "done") {
      $("status").textContent = `done (${data.stop_reason})`;
    } else if (name === "error") {
      show("error", data.detail);
    }
  }
}

// A call the run waits on, with its two buttons; `decided` shows a decision, from this page
// or from any other client (the run's approvals event).
function askApproval(run, waiting) {
  const entry = show("approval", `Approve ${waiting.name} ${waiting.arguments}?`);
  const buttons = document.createElement("div");
  const enable = (on) => { for (const button of buttons.children) button.disabled = !on; };
  const decide = async (approved) => {
    enable(false);
    try {
      const decisions = [{ tool_call_id: waiting.id, approved }];
      await call(`/v1/runs/${run}/approvals`, { body: { decisions } });
    } catch (error) {
      show("error", error.message);
      enable(true);
    }
  };
  for (const [label, approved] of [["Approve", true], ["Deny", false]]) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.addEventListener("click", () => decide(approved));
    buttons.append(button);
  }
  entry.append(buttons);
  const settle = (outcome) => { entry.textContent = `${waiting.name} ${waiting.arguments}: ${outcome}`; };
  return {
    decided(approved) { settle(approved ? "approved" : "denied"); },
    expire() { settle("not decided (the run ended)"); },
  };
}

// One event of a run; true once it has finished (done or error).
function showRunEvent(run, name, data, waiting) {
  if (name === "tool_call" || name === "tool_result") {
    showTool(name, data);
  } else if (name === "approval_required") {
    $("status").textContent = "waiting for your approval";
    for (const pending of data.calls) waiting.set(pending.id, askApproval(run, pending));
  } else if (name === "approvals") {
    for (const { tool_call_id: id, approved } of data.decisions) {
      waiting.get(id)?.decided(approved);
      waiting.delete(id);
    }
  } else if (name === "running" || name === "retrying" || name === "requeued") {
    $("status").textContent = { running: "running", retrying: "retrying", requeued: "queued again" }[name];
  } else if (name === "done" || name === "error") {
    for (const left of waiting.values()) left.expire();
    if (name === "error") show("error", data.detail);
    if (data.assistant_message) show("reply", data.assistant_message.content);
    if (data.status === "cancelled") show("stopped", "Stopped: the run was cancelled.");
    const stopped = name === "error" ? "failed" : data.status === "cancelled" ? "cancelled" : null;
    $("status").textContent = stopped ?? `done (${data.stop_reason})`;
    return true;
  }
  return false;
}

async function startRun(text, signal) {
  const created = await call(`/v1/conversations/${conversation}/runs`,
    { body: { content: text }, signal });
  turn.run = (await created.json()).id;
  $("message").value = "";
  $("status").textContent = "queued";
  if (turn.stopping) await cancelRun();
  const waiting = new Map();
  let last = null;
  // The events stream closes after worker.events_stream_seconds: while the run has not
  // finished, follow it again from the last event seen.
  for (;;) {
    const headers = last === null ? {} : { "Last-Event-ID": last };
    const response = await call(`/v1/runs/${turn.run}/events`,
      { accept: "text/event-stream", headers, signal });
    const [before, opened] = [last, Date.now()];
    for await (const [name, data, id] of events(response)) {
      last = id ?? last;
      if (showRunEvent(turn.run, name, data, waiting)) return;
    }
    // A stream that ended at once with nothing new: wait a second rather than ask again.
    if (last === before && Date.now() - opened < 1000) await new Promise((r) => setTimeout(r, 1000));
  }
}

async function cancelRun() {
  $("status").textContent = "stopping…";
  await call(`/v1/runs/${turn.run}/cancel`, { body: {} });
}

// Stop: a run is cancelled (its events then tell when it has stopped); a message's stream
// is cut off, which stops its turn on the server.
async function stop() {
  $("stop").disabled = true;
  turn.stopping = true;
  if (!turn.background) {
    turn.controller.abort();
  } else if (turn.run !== null) {
    try {
      await cancelRun();
    } catch (error) {
      show("error", error.message);
      $("stop").disabled = false;
    }
  } // else: cancelled as soon as the run's id comes back
}

function busy(on) {
  $("send").disabled = on;
  $("new").disabled = on;
  $("background").disabled = on;
  $("stop").disabled = !on;
}

$("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("message").value.trim();
  if (!text) return;
  const background = $("background").checked;
  turn = { controller: new AbortController(), background, run: null, stopping: false };
  busy(true);
  $("status").textContent = "…";
  try {
    if (conversation === null) {
      const created = await call("/v1/conversations", { body: { title: "Playground" } });
      conversation = (await created.json()).id;
    }
    show("user", text);
    await (background ? startRun : sendMessage)(text, turn.controller.signal);
  } catch (error) {
    if (error.name === "AbortError") {
      show("stopped", "Stopped.");
      $("status").textContent = "stopped";
    } else {
      show("error", error.message);
      $("status").textContent = "";
    }
  } finally {
    turn = null;
    busy(false);
  }
});

$("stop").addEventListener("click", () => { if (turn !== null) stop(); });

// Enter sends, as in a chat; Shift+Enter starts a new line (and Enter that ends an input
// method's composition only ends it).
$("message").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    if (!$("send").disabled) $("form").requestSubmit();
  }
});

$("new").addEventListener("click", () => {
  conversation = null;
  $("log").replaceChildren();
  $("status").textContent = "";
});
