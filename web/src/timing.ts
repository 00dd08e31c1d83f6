// What the reader feels, measured where they sit: in the browser, with performance.now().
// Each answer leaves User Timing entries (visible in DevTools' Performance panel):
// `ruvon:ttft` from send to the first token, `ruvon:gap` between consecutive tokens.

export interface Stats { ttftMs: number | null; tokens: number; tokensPerS: number | null; totalMs: number }

export class AnswerClock {
  private readonly sent = performance.now();
  private first: number | null = null;
  private last: number | null = null;
  chunks = 0;

  constructor(private readonly answer: number) {}

  /** A chunk with text arrived now. */
  tick(): void {
    const now = performance.now();
    const detail = { answer: this.answer };
    if (this.first === null) {
      this.first = now;
      performance.measure("ruvon:ttft", { start: this.sent, end: now, detail });
    } else {
      performance.measure("ruvon:gap", { start: this.last!, end: now, detail });
    }
    this.last = now;
    this.chunks += 1;
  }

  /** TTFT and decode speed so far; `tokens` is the server's count once the usage chunk came. */
  stats(tokens: number = this.chunks): Stats {
    const now = performance.now();
    const ttftMs = this.first === null ? null : this.first - this.sent;
    const decodeS = this.first === null || this.last === null ? 0 : (this.last - this.first) / 1000;
    return { ttftMs, tokens, tokensPerS: tokens > 1 && decodeS > 0 ? (tokens - 1) / decodeS : null, totalMs: now - this.sent };
  }
}

export function formatStats(s: Stats): string {
  const parts = [s.ttftMs === null ? "no token yet" : `TTFT ${Math.round(s.ttftMs)} ms`];
  if (s.tokensPerS !== null) parts.push(`${s.tokensPerS.toFixed(1)} tok/s`);
  parts.push(`${s.tokens} token${s.tokens === 1 ? "" : "s"}`);
  return parts.join(" · ");
}
