// The playground: POST /v1/conversations, then each message to .../messages as Server-Sent
// Events read from fetch's body (EventSource can neither POST nor send a key). The key stays
// in this page's memory only: nothing stores it, so closing the tab forgets it.
"use strict";

const $ = (id) => document.getElementById(id);
let conversation = null;

function show(kind, text) {
  const entry = document.createElement("div");
  entry.className = `entry ${kind}`;
  entry.textContent = text; // always text: model output never becomes markup
  $("log").append(entry);
  entry.scrollIntoView({ block: "end" });
  return entry;
}

async function call(path, body, accept) {
  const response = await fetch(path, {
    method: "POST",
    headers: {
      Authorization: `Bearer ${$("key").value.trim()}`,
      "Content-Type": "application/json",
      Accept: accept,
    },
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = JSON.stringify((await response.json()).detail); } catch { /* not JSON */ }
    const wait = response.headers.get("Retry-After");
    throw new Error(`HTTP ${response.status}: ${detail}${wait ? ` (retry after ${wait} s)` : ""}`);
  }
  return response;
}

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
      if (fields.event) yield [fields.event, JSON.parse(fields.data)];
    }
  }
}

async function send(text) {
  if (conversation === null) {
    const created = await call("/v1/conversations", { title: "Playground" }, "application/json");
    conversation = (await created.json()).id;
  }
  show("user", text);
  const response = await call(
    `/v1/conversations/${conversation}/messages`, { content: text }, "text/event-stream");
  let reply = null;
  for await (const [name, data] of events(response)) {
    if (name === "token") {
      reply = reply ?? show("reply", "");
      reply.textContent += data.content;
    } else if (name === "tool_call") {
      show("tool-call", `→ ${data.name} ${data.arguments}`);
      reply = null;
    } else if (name === "tool_result") {
      show("tool-result", `← ${data.name}: ${data.content}`);
    } else if (name === "done") {
      $("status").textContent = `done (${data.stop_reason})`;
    } else if (name === "error") {
      show("error", data.detail);
    }
  }
}

$("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("message").value.trim();
  if (!text) return;
  $("send").disabled = true;
  $("status").textContent = "…";
  try {
    await send(text);
    $("message").value = "";
  } catch (error) {
    show("error", error.message);
    $("status").textContent = "";
  } finally {
    $("send").disabled = false;
  }
});

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
