import { Params } from "../api";

export type Mode = "chat" | "completion";

interface Props {
  mode: Mode; onMode: (m: Mode) => void;
  params: Params; onParams: (p: Params) => void;
  system: string; onSystem: (s: string) => void;
  needsKey: boolean; apiKey: string; onApiKey: (k: string) => void; onRetryModels: () => void;
}

function NumberField({ label, value, min, max, step, onChange }: { label: string; value: number; min: number; max: number; step: number; onChange: (v: number) => void }) {
  return (
    <label className="field">
      <span>{label}</span>
      <input type="number" value={value} min={min} max={max} step={step} aria-label={label}
             onChange={(e) => { const v = e.target.valueAsNumber; if (!Number.isNaN(v)) onChange(v); }} />
    </label>
  );
}

export function ParamsPanel({ mode, onMode, params, onParams, system, onSystem, needsKey, apiKey, onApiKey, onRetryModels }: Props) {
  const set = (k: keyof Params) => (v: number) => onParams({ ...params, [k]: v });
  const wide = typeof window !== "undefined" && window.matchMedia("(min-width: 760px)").matches;
  return (
    <details className="params" open={wide || needsKey}>
      <summary>Settings</summary>
      {needsKey && (
        <label className="field key">
          <span>API key</span>
          <input type="password" value={apiKey} autoComplete="off" aria-label="API key" placeholder="the server's --api-key"
                 onChange={(e) => onApiKey(e.target.value)} onBlur={onRetryModels}
                 onKeyDown={(e) => { if (e.key === "Enter") e.currentTarget.blur(); }} />
        </label>
      )}
      <fieldset className="mode">
        <legend>Mode</legend>
        {(["chat", "completion"] as const).map((m) => (
          <label key={m}><input type="radio" name="mode" checked={mode === m} onChange={() => onMode(m)} /> {m}</label>
        ))}
      </fieldset>
      <NumberField label="Temperature" value={params.temperature} min={0} max={2} step={0.1} onChange={set("temperature")} />
      <NumberField label="Top-p" value={params.top_p} min={0.01} max={1} step={0.05} onChange={set("top_p")} />
      <NumberField label="Max tokens" value={params.max_tokens} min={1} max={4096} step={16} onChange={set("max_tokens")} />
      {mode === "chat" && (
        <label className="field">
          <span>System prompt</span>
          <textarea value={system} rows={3} onChange={(e) => onSystem(e.target.value)} aria-label="system prompt" />
        </label>
      )}
    </details>
  );
}
