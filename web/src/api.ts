// The three OpenAI routes the chat uses, with the API key (if any) as a bearer token.
import { readSSE } from "./sse";

export type Role = "system" | "user" | "assistant";
export interface Message { role: Role; content: string }
export interface Params { temperature: number; top_p: number; max_tokens: number }
export interface Usage { prompt_tokens: number; completion_tokens: number }

/** An HTTP error in OpenAI's shape: the status (401, 429, ...) and the server's message. */
export class APIError extends Error {
  constructor(public status: number, message: string) { super(message); }
}

function headers(apiKey: string): HeadersInit {
  const h: Record<string, string> = { "Content-Type": "application/json" };
  if (apiKey) h.Authorization = `Bearer ${apiKey}`;
  return h;
}

// Relative URLs: the page is served by the API server itself, possibly under a --root-path prefix.
async function post(path: string, body: object, apiKey: string, signal: AbortSignal): Promise<Response> {
  const r = await fetch(path, { method: "POST", headers: headers(apiKey), body: JSON.stringify(body), signal });
  if (!r.ok) throw await apiError(r);
  return r;
}

async function apiError(r: Response): Promise<APIError> {
  let message = r.statusText;
  try { message = (await r.json()).error?.message ?? message; } catch { /* not JSON: keep the status text */ }
  return new APIError(r.status, message);
}

/** The names the server serves (the base model and any adapters): GET v1/models. */
export async function listModels(apiKey: string): Promise<string[]> {
  const r = await fetch("v1/models", { headers: headers(apiKey) });
  if (!r.ok) throw await apiError(r);
  return (await r.json()).data.map((m: { id: string }) => m.id);
}

/** One piece of a streamed answer: new text, or (the last chunk) the token counts. */
export interface Delta { text: string; usage?: Usage; finish_reason?: string | null }

interface Chunk {
  choices?: { delta?: { content?: string }; text?: string; finish_reason?: string | null }[];
  usage?: Usage | null;
  error?: { message: string; code?: number | string };
}

function toDelta(c: Chunk): Delta {
  // An error after the stream began arrives as an event of its own (the status line was already 200).
  if (c.error) throw new APIError(typeof c.error.code === "number" ? c.error.code : 500, c.error.message);
  const choice = c.choices?.[0];
  return { text: choice?.delta?.content ?? choice?.text ?? "", usage: c.usage ?? undefined, finish_reason: choice?.finish_reason };
}

/** Stream a chat answer (POST v1/chat/completions) or a plain continuation (POST v1/completions). */
export async function* streamAnswer(mode: "chat" | "completion", model: string, messages: Message[], prompt: string,
                                    params: Params, apiKey: string, signal: AbortSignal): AsyncGenerator<Delta> {
  const common = { model, stream: true, stream_options: { include_usage: true }, ...params };
  const r = mode === "chat"
    ? await post("v1/chat/completions", { ...common, messages }, apiKey, signal)
    : await post("v1/completions", { ...common, prompt }, apiKey, signal);
  for await (const chunk of readSSE<Chunk>(r)) yield toDelta(chunk);
}
