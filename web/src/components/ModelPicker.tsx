interface Props { models: string[]; model: string; onChange: (name: string) => void; error: string }

/** The served names from GET /v1/models: the base model and any LoRA adapters (Part 18). */
export function ModelPicker({ models, model, onChange, error }: Props) {
  return (
    <label className="picker" title={error || "Model or adapter"}>
      <span className="sr-only">Model</span>
      <select value={model} onChange={(e) => onChange(e.target.value)} aria-label="model" disabled={!models.length}>
        {models.length ? models.map((m) => <option key={m} value={m}>{m}</option>) : <option value="">{error ? "models unavailable" : "loading…"}</option>}
      </select>
    </label>
  );
}
