import { useCallback, useEffect, useRef, useState } from "react";
import { APIError, Message, Params, listModels, streamAnswer } from "./api";
import { AnswerClock } from "./timing";
import { ChatView, type Turn } from "./components/ChatView";
import { Composer } from "./components/Composer";
import { ModelPicker } from "./components/ModelPicker";
import { Mode, ParamsPanel } from "./components/ParamsPanel";

const KEY_STORAGE = "ruvon.apiKey"; // sessionStorage: the key lives as long as the tab
const THEME_STORAGE = "ruvon.theme"; // localStorage: "light" or "dark"; unset follows the system

function useTheme(): [string, () => void] {
  const system = window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  const [theme, setTheme] = useState(() => localStorage.getItem(THEME_STORAGE) ?? system);
  useEffect(() => { document.documentElement.dataset.theme = theme; }, [theme]);
  const toggle = () => setTheme((t) => { const next = t === "dark" ? "light" : "dark"; localStorage.setItem(THEME_STORAGE, next); return next; });
  return [theme, toggle];
}

/** What the reader should see for a failed request. */
function describe(e: unknown): string {
  if (e instanceof APIError) {
    if (e.status === 401) return `401 — the server needs an API key: enter it in Settings. (${e.message})`;
    if (e.status === 429) return `429 — the server is busy and refused the request; try again shortly. (${e.message})`;
    return `${e.status} — ${e.message}`;
  }
  if (e instanceof TypeError) return `Network error: could not reach the server (${e.message}).`;
  return String(e);
}

export function App() {
  const [turns, setTurns] = useState<Turn[]>([]);
  const [mode, setMode] = useState<Mode>("chat");
  const [params, setParams] = useState<Params>({ temperature: 0.8, top_p: 0.95, max_tokens: 128 });
  const [system, setSystem] = useState("");
  const [apiKey, setApiKey] = useState(() => sessionStorage.getItem(KEY_STORAGE) ?? "");
  const [needsKey, setNeedsKey] = useState(() => !!sessionStorage.getItem(KEY_STORAGE));
  const [models, setModels] = useState<string[]>([]);
  const [model, setModel] = useState("");
  const [modelError, setModelError] = useState("");
  const abort = useRef<AbortController | null>(null); // the answer in flight, for Stop and Esc
  const answers = useRef(0); // numbers the answers' timing entries
  const [streaming, setStreaming] = useState(false);
  const [theme, toggleTheme] = useTheme();

  const refreshModels = useCallback(async () => {
    try {
      const names = await listModels(apiKey);
      setModels(names);
      setModel((m) => (names.includes(m) ? m : names[0] ?? ""));
      setModelError("");
    } catch (e) {
      if (e instanceof APIError && e.status === 401) setNeedsKey(true);
      setModelError(describe(e));
    }
  }, [apiKey]);
  // Asked once at start, and again when the key field loses focus: not on every keystroke of a key being typed.
  useEffect(() => { void refreshModels(); }, []);
  useEffect(() => { sessionStorage.setItem(KEY_STORAGE, apiKey); }, [apiKey]);

  const update = (index: number, change: Partial<Turn>) =>
    setTurns((ts) => ts.map((t, i) => (i === index ? { ...t, ...change } : t)));

  const send = async (text: string) => {
    if (streaming || !text.trim()) return;
    const base = mode === "chat" ? turns : []; // a completion continues the prompt alone
    const unanswered = (i: number) => base[i].role === "user" && base[i + 1]?.role === "error"; // a question an error took the answer's place of
    const history = base.flatMap((t, i): Message[] => (t.role === "error" || unanswered(i) ? [] : [{ role: t.role, content: t.content }]));
    const messages: Message[] = [...(system ? [{ role: "system" as const, content: system }] : []), ...history, { role: "user", content: text }];
    const index = base.length + 1;
    setTurns([...base, { role: "user", content: text }, { role: "assistant", content: "", streaming: true }]);
    const controller = new AbortController();
    abort.current = controller;
    setStreaming(true);
    const clock = new AnswerClock(++answers.current);
    let content = "", tokens: number | undefined; // tokens: the server's count, from the last chunk's usage
    try {
      for await (const delta of streamAnswer(mode, model, messages, text, params, apiKey, controller.signal)) {
        if (delta.text) { clock.tick(); content += delta.text; }
        if (delta.usage) tokens = delta.usage.completion_tokens;
        update(index, { content, stats: clock.stats(tokens) });
      }
      update(index, { streaming: false, stats: clock.stats(tokens) });
    } catch (e) {
      if (controller.signal.aborted) update(index, { streaming: false, stopped: true, stats: clock.stats() });
      else {
        if (e instanceof APIError && e.status === 401) setNeedsKey(true);
        const error: Turn = { role: "error", content: describe(e) };
        setTurns((ts) => content ? [...ts.map((t, i) => (i === index ? { ...t, streaming: false, stats: clock.stats() } : t)), error]
                                 : [...ts.slice(0, index), error]); // nothing was written: the error takes the answer's place
      }
    } finally {
      abort.current = null;
      setStreaming(false);
    }
  };

  const stop = () => abort.current?.abort(); // the fetch ends; the server sees the disconnect and cancels the request

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => { if (e.key === "Escape") stop(); };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  const clear = () => { stop(); setTurns([]); performance.clearMeasures(); };

  return (
    <div className="app">
      <header className="topbar">
        <h1>ruvon</h1>
        <ModelPicker models={models} model={model} onChange={setModel} error={modelError} />
        <button className="ghost" onClick={toggleTheme} title="Light or dark" aria-label="toggle theme">{theme === "dark" ? "☀" : "☾"}</button>
        <button className="ghost" onClick={clear} title="Start a new conversation">New</button>
      </header>
      <main className="layout">
        <section className="conversation">
          <ChatView turns={turns} mode={mode} />
          <Composer streaming={streaming} onSend={send} onStop={stop} mode={mode} />
        </section>
        <ParamsPanel mode={mode} onMode={setMode} params={params} onParams={setParams} system={system} onSystem={setSystem}
                     needsKey={needsKey} apiKey={apiKey} onApiKey={setApiKey} onRetryModels={refreshModels} />
      </main>
    </div>
  );
}
