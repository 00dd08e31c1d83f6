"""Part 17 speed on a GPU: `ruvon bench latency` (batch 1) and `ruvon bench throughput` (256 requests) of a model with dummy
float16 weights, unquantized and under every `--quantization` method, run as users run them (one `ruvon bench` process each,
in the same session on the same GPU), collected into one JSON with each run's TPOT, its weight-streaming floor and throughput.

Run on a GPU:  python benchmarks/quant_speed.py --json benchmarks/results/quant_speed_gpu.json

bitsandbytes-int8 decodes without CUDA graphs (Part 13c), one launch at a time; --num-iters times fewer batch-1 runs of it:
    python benchmarks/quant_speed.py --methods none,bitsandbytes-int8 --num-iters 6 --json benchmarks/results/quant_speed_bnb_int8_gpu.json
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

METHODS = [None, "int8", "int4", "bitsandbytes-int8", "bitsandbytes-nf4"]


def bench(kind: str, model: str, method: str | None, out: Path, extra: list[str]) -> dict:
    "One `ruvon bench KIND` process; its JSON, or the error it printed."
    cmd = [sys.executable, "-c", "from ruvon.cli import app; app()", "bench", kind, model, "--load-format", "dummy", "--dtype", "float16",
           "--json", str(out), *extra, *(["--quantization", method] if method else [])]
    r = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if r.returncode != 0: return {"error": error_line(r.stderr) or f"exit {r.returncode}"}
    return json.loads(out.read_text())


def error_line(stderr: str) -> str | None:
    "The last line of `stderr` that names an exception (`torch.AcceleratorError: CUDA error: ...`), else its last line."
    lines = stderr.strip().splitlines()
    named = [line for line in lines if re.match(r"[\w.]+(Error|Exception)\b", line)]
    return (named or lines or [None])[-1]


def summary(latency: dict, throughput: dict) -> dict:
    "The numbers the article compares: TPOT at batch 1 against its floor, and throughput."
    row = {}
    if "error" in latency: row["latency_error"] = latency["error"]
    else:
        roof = latency.get("roofline") or {}
        row |= {"tpot_ms": latency["metrics"]["tpot_ms"]["mean"], "weight_bytes": roof.get("weight_bytes"),
                "weight_streaming_ms": roof.get("weight_streaming_ms"), "tpot_over_weight_streaming": roof.get("tpot_over_weight_streaming")}
    if "error" in throughput: row["throughput_error"] = throughput["error"]
    else: row["output_tokens_per_s"] = throughput["metrics"]["output_tokens_per_s"]
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", required=True)
    p.add_argument("--models", default="gpt2-xl")
    p.add_argument("--methods", default=",".join(m or "none" for m in METHODS))
    p.add_argument("--num-prompts", type=int, default=256)
    p.add_argument("--num-iters", type=int, default=30, help="batch-1 runs timed (ruvon bench latency's --num-iters; a third of them, at least one, first as warm-up)")
    args = p.parse_args(argv)
    result = {"benchmark": "quant_speed", "command": "python " + " ".join(sys.argv), "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            for name in args.methods.split(","):
                method = None if name == "none" else name
                def record(lat: dict, thr: dict) -> None:  # written after each process: a partial result survives a timeout
                    result["runs"][f"{model}/{name}"] = {"summary": summary(lat, thr), "latency": lat, "throughput": thr}
                    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")

                lat = bench("latency", model, method, Path(tmp) / "lat.json", ["--batch-size", "1", "--input-len", "32", "--output-len", "128",
                            "--num-iters", str(args.num_iters), "--num-iters-warmup", str(max(1, args.num_iters // 3))])
                result.setdefault("device_name", lat.get("device_name"))
                record(lat, {"error": "not run: stopped before the throughput run ended"})
                record(lat, bench("throughput", model, method, Path(tmp) / "thr.json", ["--num-prompts", str(args.num_prompts)]))
                print(model, name, json.dumps(result["runs"][f"{model}/{name}"]["summary"]), flush=True)


if __name__ == "__main__":
    main()
