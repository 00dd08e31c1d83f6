// Server-sent events over fetch: the body arrives in arbitrary byte chunks, so
//  - bytes are decoded with TextDecoder in stream mode (a UTF-8 character split across two chunks
//    is held back until its last byte arrives, instead of turning into U+FFFD), and
//  - text is cut into events at blank lines; an event cut in half waits for the next chunk.
// `data: [DONE]` ends an OpenAI stream. Aborting the fetch's AbortSignal ends the read with an AbortError.

/** One SSE event's `data:` lines joined, as the server framed them. */
export function parseEvent(block: string): string | null {
  const data = block
    .split(/\r?\n/)
    .filter((line) => line.startsWith("data:"))
    .map((line) => line.slice(line.startsWith("data: ") ? 6 : 5));
  return data.length ? data.join("\n") : null; // comments (": ping") and other fields carry no data
}

/** Split `buffer` into complete events and the incomplete rest. */
export function splitEvents(buffer: string): [string[], string] {
  const parts = buffer.split(/\r?\n\r?\n/);
  return [parts.slice(0, -1), parts[parts.length - 1]];
}

/** The JSON payloads of an OpenAI SSE response, up to `[DONE]`. */
export async function* readSSE<T>(response: Response): AsyncGenerator<T> {
  if (!response.body) throw new Error("the response has no body to stream");
  const reader = response.body.getReader();
  const decoder = new TextDecoder("utf-8");
  let buffer = "";
  let finished = false; // [DONE] seen, or the body read to its end
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buffer += decoder.decode(value, { stream: !done }); // stream: true keeps a split character's first bytes
      const [events, rest] = splitEvents(done ? buffer + "\n\n" : buffer);
      buffer = rest;
      for (const block of events) {
        const data = parseEvent(block);
        if (data === null) continue;
        if (data === "[DONE]") { finished = true; return; }
        yield JSON.parse(data) as T;
      }
      if (done) { finished = true; throw new Error("the stream ended before [DONE]: the answer is cut short"); }
    }
  } finally {
    if (!finished) await reader.cancel().catch(() => {}); // the reader stopped early: close the body, so the server cancels
    reader.releaseLock();
  }
}
