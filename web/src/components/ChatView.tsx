import { useEffect, useRef } from "react";
import { Role } from "../api";
import { Stats, formatStats } from "../timing";
import type { Mode } from "./ParamsPanel";

export interface Turn { role: Role | "error"; content: string; streaming?: boolean; stopped?: boolean; stats?: Stats }

function TypingIndicator() {
  return <span className="typing" aria-label="the model is typing"><i /><i /><i /></span>;
}

function Bubble({ turn, mode }: { turn: Turn; mode: Mode }) {
  const label = turn.role === "user" ? (mode === "chat" ? "You" : "Prompt") : turn.role === "error" ? "Error" : mode === "chat" ? "Assistant" : "Continuation";
  return (
    <article className={`turn ${turn.role}`} data-streaming={turn.streaming ? "true" : undefined} role={turn.role === "error" ? "alert" : undefined}>
      <div className="who">{label}</div>
      <div className="content">
        {turn.content}
        {turn.streaming && (turn.content ? <span className="caret" /> : <TypingIndicator />)}
      </div>
      {(turn.stats || turn.stopped) && (
        <div className="stats">{turn.stats && formatStats(turn.stats)}{turn.stopped && <span className="stopped"> · stopped</span>}</div>
      )}
    </article>
  );
}

export function ChatView({ turns, mode }: { turns: Turn[]; mode: Mode }) {
  const box = useRef<HTMLDivElement>(null);
  const last = turns[turns.length - 1];
  // Follow the answer as it grows (scrolling this box only, never the page).
  useEffect(() => { if (box.current) box.current.scrollTop = box.current.scrollHeight; }, [turns.length, last?.content]);
  return (
    <div className="messages" ref={box} aria-live="polite">
      {turns.length === 0 && <p className="empty">Ask something. Enter sends, Shift+Enter adds a line, Esc stops.</p>}
      {turns.map((t, i) => <Bubble key={i} turn={t} mode={mode} />)}
    </div>
  );
}
