// Drive the openai Node SDK (npm `openai`, pinned in clients/package.json) against a Responses
// server.
//
//     node clients/drivers/openai_node.mjs --base-url URL --model M [--api-key K] [--deadline S]
//
// Prints one JSON line: {"client", "version", "status", "steps": [{"step", "status", "error"}],
// "error"} (harness/run/clients.py reads it). `new OpenAI({baseURL, maxRetries: 0})`:
//
//   text       responses.create with a plain prompt; passes on a non-empty output_text.
//   tool       responses.stream with a get_weather function tool, asked to call it,
//              tool_choice "required" (the server's tool plumbing is judged, not whether the
//              model would have chosen the tool), its finalResponse() holding a function_call;
//              then responses.create with previous_response_id and the function_call_output;
//              passes when that answers in text.
//   follow_up  responses.create with previous_response_id = the tool round's answer (the text
//              step's when the tool round left none) and a new user message; passes on a
//              non-empty output_text.
//
// The first error is the SDK's own (`BadRequestError: 400 ...`).
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

const CLIENT = "openai-node";
const TEXT_PROMPT = "Say hello in one short sentence.";
const TOOL_PROMPT = "Call the tool get_weather for Paris, then tell me the weather there.";
const FOLLOW_UP_PROMPT = "Now say goodbye in one short sentence.";
const MAX_ERROR_CHARS = 600;
const TOOLS = [{ type: "function", name: "get_weather", description: "Current weather for a city",
  strict: true, parameters: { type: "object", properties: { city: { type: "string" } },
    required: ["city"], additionalProperties: false } }];

const { values: a } = parseArgs({ options: {
  "base-url": { type: "string" }, model: { type: "string" },
  "api-key": { type: "string", default: "respcheck" }, deadline: { type: "string", default: "120" },
} });
const cut = (s) => { s = String(s).split(/\s+/).join(" ").trim(); return s.length <= MAX_ERROR_CHARS ? s : s.slice(0, MAX_ERROR_CHARS - 3) + "..."; };

const result = { client: CLIENT, version: null, status: "fail", steps: [], error: null };
let OpenAI;
try {
  // openai's exports map hides package.json from require.resolve: read it from node_modules.
  result.version = JSON.parse(readFileSync(new URL("../node_modules/openai/package.json", import.meta.url), "utf8")).version;
  OpenAI = (await import("openai")).default;
} catch {
  result.status = "skip";
  result.error = "openai-node is not installed: run scripts/install-clients.sh";
  console.log(JSON.stringify(result));
  process.exit(0);
}

const client = new OpenAI({ baseURL: a["base-url"].replace(/\/$/, ""), apiKey: a["api-key"],
  maxRetries: 0, timeout: Number(a.deadline) * 1000 });

async function step(name, body) {
  const started = Date.now();
  let error = null;
  try {
    error = await body();
  } catch (e) {
    error = `${e?.constructor?.name ?? "Error"}: ${e?.message ?? e}`;
  }
  result.steps.push({ step: name, status: error ? "fail" : "pass",
    duration_s: (Date.now() - started) / 1000, error: error ? cut(error) : null });
}

let lastId = null;
await step("text", async () => {
  const r = await client.responses.create({ model: a.model, input: TEXT_PROMPT, max_output_tokens: 256 });
  lastId = r.id;
  return r.output_text?.trim() ? null : "empty output_text";
});
await step("tool", async () => {
  const stream = client.responses.stream({ model: a.model, input: TOOL_PROMPT, tools: TOOLS,
    tool_choice: "required", max_output_tokens: 256 });
  const first = await stream.finalResponse();
  const call = first.output.find((item) => item.type === "function_call");
  if (!call) return "the model did not call get_weather (no function_call in the output)";
  const answer = await client.responses.create({ model: a.model, previous_response_id: first.id,
    tools: TOOLS, max_output_tokens: 256, input: [{ type: "function_call_output",
      call_id: call.call_id, output: JSON.stringify({ temperature_c: 18, sky: "clear" }) }] });
  lastId = answer.id;
  return answer.output_text?.trim() ? null : "empty output_text after the function_call_output";
});
await step("follow_up", async () => {
  if (!lastId) return "no earlier step left a response id to continue from";
  const r = await client.responses.create({ model: a.model, previous_response_id: lastId,
    input: FOLLOW_UP_PROMPT, max_output_tokens: 256 });
  return r.output_text?.trim() ? null : "empty output_text";
});

const failed = result.steps.filter((s) => s.status !== "pass");
result.status = failed.length ? "fail" : "pass";
result.error = failed.length ? `${failed[0].step}: ${failed[0].error}` : null;
console.log(JSON.stringify(result));
