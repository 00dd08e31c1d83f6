import { KeyboardEvent, useState } from "react";
import type { Mode } from "./ParamsPanel";

interface Props { streaming: boolean; mode: Mode; onSend: (text: string) => void; onStop: () => void }

export function Composer({ streaming, mode, onSend, onStop }: Props) {
  const [text, setText] = useState("");
  const submit = () => {
    if (streaming || !text.trim()) return;
    onSend(text);
    setText("");
  };
  const onKeyDown = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) { e.preventDefault(); submit(); } // Shift+Enter: a new line
  };
  return (
    <form className="composer" onSubmit={(e) => { e.preventDefault(); submit(); }}>
      <textarea value={text} onChange={(e) => setText(e.target.value)} onKeyDown={onKeyDown} rows={2}
                placeholder={mode === "chat" ? "Message the model" : "A prompt to continue"} aria-label="prompt" />
      {streaming
        ? <button type="button" className="stop" onClick={onStop} title="Stop (Esc)">Stop</button>
        : <button type="submit" className="send" disabled={!text.trim()} title="Send (Enter)">Send</button>}
    </form>
  );
}
