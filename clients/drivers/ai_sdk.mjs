// Drive the Vercel AI SDK's OpenAI Responses provider (npm `ai` + `@ai-sdk/openai`, pinned in
// clients/package.json) against a Responses server.
//
//     node clients/drivers/ai_sdk.mjs --base-url URL --model M [--api-key K] [--deadline S]
//
// Prints one JSON line: {"client", "version", "status", "steps": [{"step", "status", "error"}],
// "error"} (harness/run/clients.py reads it). The model is `createOpenAI({baseURL}).responses(M)`:
//
//   text       generateText with a plain prompt; passes on non-empty text.
//   tool       streamText with a get_weather tool (zod input schema, execute) and
//              stopWhen: stepCountIs(3), asked to call it, toolChoice "required" on the first
//              step and "auto" after (prepareStep): the server's tool plumbing is judged, not
//              whether the model would have chosen the tool; passes when the tool executed and
//              the last step answered in text.
//   follow_up  generateText with the conversation so far (the SDK's own history: the tool
//              step's response messages, or the text step's when the tool step left none, which
//              it sends back as item references or items) plus a new user message; passes on
//              non-empty text.
//
// The first error is the SDK's own (`APICallError: ...`, with the server's message).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { parseArgs } from "node:util";

const CLIENT = "ai-sdk";
const TEXT_PROMPT = "Say hello in one short sentence.";
const TOOL_PROMPT = "Call the tool get_weather for Paris, then tell me the weather there.";
const FOLLOW_UP_PROMPT = "Now say goodbye in one short sentence.";
const MAX_ERROR_CHARS = 600;

const { values: a } = parseArgs({ options: {
  "base-url": { type: "string" }, model: { type: "string" },
  "api-key": { type: "string", default: "respcheck" }, deadline: { type: "string", default: "120" },
} });
const require = createRequire(import.meta.url);
const cut = (s) => { s = String(s).split(/\s+/).join(" ").trim(); return s.length <= MAX_ERROR_CHARS ? s : s.slice(0, MAX_ERROR_CHARS - 3) + "..."; };
const describe = (e) => cut(`${e?.name ?? "Error"}: ${e?.message ?? e}` +
  (e?.responseBody ? ` (response body: ${e.responseBody})` : ""));

const result = { client: CLIENT, version: null, status: "fail", steps: [], error: null };
let ai, openaiProvider, z;
try {
  result.version = JSON.parse(readFileSync(require.resolve("ai/package.json"), "utf8")).version +
    " (@ai-sdk/openai " + JSON.parse(readFileSync(require.resolve("@ai-sdk/openai/package.json"), "utf8")).version + ")";
  ai = await import("ai");
  openaiProvider = await import("@ai-sdk/openai");
  z = (await import("zod")).z;
} catch {
  result.status = "skip";
  result.error = "the AI SDK is not installed: run scripts/install-clients.sh";
  console.log(JSON.stringify(result));
  process.exit(0);
}

const deadlineMs = Number(a.deadline) * 1000;
const provider = openaiProvider.createOpenAI({ baseURL: a["base-url"].replace(/\/$/, ""), apiKey: a["api-key"] });
const model = provider.responses(a.model);
const ran = [];
const tools = {
  get_weather: ai.tool({
    description: "Current weather for a city",
    inputSchema: z.object({ city: z.string() }),
    execute: async ({ city }) => { ran.push(city); return { city, temperature_c: 18, sky: "clear" }; },
  }),
};

async function step(name, body) {
  const started = Date.now();
  let error = null;
  const signal = AbortSignal.timeout(deadlineMs);
  try {
    error = await body(signal);
  } catch (e) {
    error = signal.aborted ? `no answer within ${a.deadline} s` : describe(e);
  }
  result.steps.push({ step: name, status: error ? "fail" : "pass",
    duration_s: (Date.now() - started) / 1000, error: error ? cut(error) : null });
}

let history = null;
await step("text", async (abortSignal) => {
  const messages = [{ role: "user", content: TEXT_PROMPT }];
  const r = await ai.generateText({ model, messages, maxRetries: 0, abortSignal });
  history = [...messages, ...r.response.messages];
  return r.text.trim() ? null : "empty text";
});
await step("tool", async (abortSignal) => {
  let streamError = null;
  const messages = [{ role: "user", content: TOOL_PROMPT }];
  const r = ai.streamText({ model, messages, tools, stopWhen: ai.stepCountIs(3), maxRetries: 0,
    toolChoice: "required", prepareStep: ({ stepNumber }) => (stepNumber > 0 ? { toolChoice: "auto" } : {}),
    abortSignal, onError: ({ error }) => { streamError ??= error; } });
  let text;
  try { text = await r.text; } catch (e) { throw streamError ?? e; }
  if (streamError) throw streamError;
  if (!ran.length) {
    // The SDK's own reason, when it refused the call (AI_InvalidToolInputError: arguments that
    // do not satisfy the tool's schema are never executed).
    const refused = (await r.steps).flatMap((st) => st.content).find((p) => p.type === "tool-error");
    return refused ? `the tool call was not executed: ${describe(refused.error)}`
      : "the model did not call get_weather (no tool call in the run)";
  }
  if (!text.trim()) return "empty text after the tool result";
  history = [...messages, ...(await r.response).messages];
  return null;
});
await step("follow_up", async (abortSignal) => {
  if (!history) return "no earlier step left a history to continue from";
  const r = await ai.generateText({ model, tools, maxRetries: 0, abortSignal,
    messages: [...history, { role: "user", content: FOLLOW_UP_PROMPT }] });
  return r.text.trim() ? null : "empty text";
});

const failed = result.steps.filter((s) => s.status !== "pass");
result.status = failed.length ? "fail" : "pass";
result.error = failed.length ? `${failed[0].step}: ${failed[0].error}` : null;
console.log(JSON.stringify(result));
