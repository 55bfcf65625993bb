// HttpAgent declares a frontend tool; the model calls it, and this script runs it, as a page
// would, then runs the thread again with its result: AG-UI's own client against the api's
// AG-UI endpoint. The run's subscriber sees each call end and the run finish naming the calls
// left for the client (pendingToolCallIds); the agent's own calls come with their result.
// Usage: node frontend_tool.mjs <base url> <api key> <conversation id>
import { HttpAgent, randomUUID } from "@ag-ui/client";

const [baseUrl, key, threadId] = process.argv.slice(2);
const weather = {
  name: "weather",
  description: "The weather in a city, as the page's widget shows it",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
};
// The frontend tools, run here: only their results reach the agent.
const frontend = { weather: ({ city }) => `sunny in ${city}` };

const agent = new HttpAgent({
  url: `${baseUrl}/v1/conversations/${threadId}/agui`,
  headers: { Authorization: `Bearer ${key}` },
  threadId,
  initialMessages: [
    { id: "u1", role: "user", content: 'weather?\n/tool weather {"city": "Paris"}' },
  ],
});
const calls = new Map();
let owed = [];
const subscriber = {
  onToolCallEndEvent({ event, toolCallName, toolCallArgs }) {
    calls.set(event.toolCallId, { name: toolCallName, args: toolCallArgs });
  },
  onRunFinishedEvent(finished) {
    owed = finished.outcome === "success" ? finished.pendingToolCallIds : [];
  },
};

const first = await agent.runAgent({ runId: "run-1", tools: [weather] }, subscriber);
const ran = owed.map((id) => ({ id, ...calls.get(id) }));
for (const call of ran) {
  const content = frontend[call.name](call.args);
  agent.addMessage({ id: randomUUID(), role: "tool", toolCallId: call.id, content });
}
const second = await agent.runAgent({ runId: "run-2", tools: [weather] }, subscriber);

const text = (messages) =>
  messages.map((m) => [m.role, m.content ?? "", (m.toolCalls ?? []).map((c) => c.function.name)]);
console.log(
  JSON.stringify({
    ran,
    owedAfter: owed,
    first: text(first.newMessages),
    second: text(second.newMessages),
    thread: text(agent.messages),
  }),
);
