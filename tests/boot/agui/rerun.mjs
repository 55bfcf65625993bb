// One HttpAgent runs a thread twice with no new user message in between, as a frontend's
// "regenerate" does: AG-UI's own client against the api's AG-UI endpoint.
// Usage: node rerun.mjs <base url> <api key> <conversation id>
import { HttpAgent } from "@ag-ui/client";

const [baseUrl, key, threadId] = process.argv.slice(2);
const agent = new HttpAgent({
  url: `${baseUrl}/v1/conversations/${threadId}/agui`,
  headers: { Authorization: `Bearer ${key}` },
  threadId,
  initialMessages: [{ id: "u1", role: "user", content: "hi" }],
});
const first = await agent.runAgent({ runId: "run-1" });
const second = await agent.runAgent({ runId: "run-2" });
const text = (messages) => messages.map((message) => [message.role, message.content]);
console.log(
  JSON.stringify({
    first: text(first.newMessages),
    second: text(second.newMessages),
    thread: text(agent.messages),
  }),
);
