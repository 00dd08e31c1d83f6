"""Part 17's modest-GPU demo: which GPT-2 fits a 2 GiB or a 4 GiB card, in which format, and for how many 1,024-token contexts.

For each cap (--caps) × model (--models) × quantization (--quantizations) it starts a real
`ruvon serve MODEL --load-format dummy --dtype float16 [--quantization Q] --max-gpu-memory CAP`, and records:
whether it came up, or the one line it refused with; its KV pool (the `ruvon:cache_config_info` gauge of /metrics:
blocks × block size tokens, and that over 1,024 = full GPT-2 contexts held at once); the process's GPU memory
(`nvidia-smi`, which counts the CUDA context too, and torch's reserved bytes from /metrics); and a short closed-loop
`ruvon loadtest` (one user per context the pool holds, at most --max-users, prompts of --prompt-words one-token words
plus --max-tokens generated: about 1,024 tokens a request). Then it stops the server and starts the next case.
The 12 default cases are meant to take under six minutes on one H100 (a server start and --duration 8 s of load each):

    python benchmarks/modest_gpu.py --json benchmarks/results/modest_gpu_h100.json

and the result as a Markdown table:

    python benchmarks/modest_gpu.py --table benchmarks/results/modest_gpu_h100.json

A CPU run checks the plumbing (no cap: the cap is a GPU's), one case with the 2-layer stand-in:

    python benchmarks/modest_gpu.py --device cpu --models ../shared/data/checkpoints/ruvon-standin-2l --load-format auto \\
        --dtype float32 --quantizations none --caps none --prompt-words 100 --max-tokens 8 --duration 2 --json /tmp/modest_cpu.json
"""
import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch
from common import CLI, device_name, free_port, wait_healthy
from prometheus_client.parser import text_string_to_metric_families

from ruvon.cli import parse_bytes

CONTEXT = 1024  # GPT-2's context: the unit of "concurrent contexts"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", help="where to write the result")
    p.add_argument("--table", help="print the Markdown table of this result JSON and exit")
    p.add_argument("--models", default="gpt2-medium,gpt2-xl")
    p.add_argument("--quantizations", default="none,int8,int4")
    p.add_argument("--caps", default="2GiB,4GiB", help="--max-gpu-memory values; none: no cap (a CPU run)")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="float16")
    p.add_argument("--load-format", default="dummy")
    p.add_argument("--prompt-words", type=int, default=1000, help="words per prompt, one GPT-2 token each")
    p.add_argument("--max-tokens", type=int, default=24, help="tokens generated per request (ignore_eos)")
    p.add_argument("--duration", type=float, default=8.0, help="seconds of load per case")
    p.add_argument("--max-users", type=int, default=32, help="most concurrent users of a case's load test")
    p.add_argument("--health-timeout", type=float, default=240.0, help="seconds to wait for a server to load")
    p.add_argument("--serve-args", default="", help="more `ruvon serve` options, as one string")
    args = p.parse_args(argv)
    if (args.json is None) == (args.table is None): p.error("give --json (run the cases) or --table (print a result)")
    return args


def serve_command(args, model: str, quantization: str, cap: str, port: int) -> list[str]:
    "One case's `ruvon serve`, run by this interpreter."
    cmd = [sys.executable, "-c", CLI, "serve", model, "--port", str(port), "--load-format", args.load_format, "--dtype", args.dtype]
    cmd += ["--quantization", quantization] if quantization != "none" else []
    cmd += ["--max-gpu-memory", cap] if cap != "none" else []
    return cmd + (["--device", args.device] if args.device else []) + shlex.split(args.serve_args)


def error_line(log: str) -> str:
    "The server's one line of refusal (`error: ...`), else its last line."
    lines = [ln for ln in log.splitlines() if ln.strip()]
    return next((ln for ln in reversed(lines) if ln.startswith("error:")), lines[-1] if lines else "no output")


def kv_pool(url: str) -> dict:
    "The KV pool the server sized (Part 11's `ruvon:cache_config_info`) and torch's reserved GPU bytes, from /metrics."
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=30).text)}
    (info,) = families["ruvon:cache_config_info"].samples
    blocks, block_size = int(info.labels["num_gpu_blocks"]), int(info.labels["block_size"])
    reserved = families.get("ruvon:gpu_memory_reserved_bytes")
    return {"num_gpu_blocks": blocks, "block_size": block_size, "kv_tokens": blocks * block_size,
            "contexts_1024": blocks * block_size / CONTEXT, "torch_reserved_bytes": int(reserved.samples[0].value) if reserved else None}


def gpu_memory_mib(pid: int) -> int | None:
    "The GPU memory `nvidia-smi` says process `pid` holds (CUDA context included), in MiB; None where it cannot tell."
    try: out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired): return None
    used = [int(m) for p, m in (ln.split(",") for ln in out.strip().splitlines() if "," in ln) if int(p) == pid]
    return used[0] if used else None


def loadtest(args, url: str, users: int, out: Path) -> dict:
    "A short closed-loop `ruvon loadtest` of `users`; its one level, or the error it printed."
    cmd = [sys.executable, "-c", CLI, "loadtest", url, "--concurrency", str(users), "--duration", str(args.duration),
           "--max-tokens", str(args.max_tokens), "--ignore-eos", "--prompt-words", str(args.prompt_words), "--json", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0: return {"error": error_line(r.stderr)}
    (level,) = json.loads(out.read_text())["levels"]
    keep = ("num_ok", "num_errors", "errors", "requests_per_s", "output_tokens_per_s", "num_prompt_tokens", "num_output_tokens")
    return {"command": "ruvon " + shlex.join(cmd[3:]), **{k: level[k] for k in keep},
            **{f"{k}_p50": level[k]["p50"] for k in ("ttft_ms", "tpot_ms", "e2e_latency_ms")}, "ttft_ms_p99": level["ttft_ms"]["p99"]}


def run_case(args, model: str, quantization: str, cap: str, tmp: Path) -> dict:
    "Start one server, measure it, stop it."
    port = free_port()
    cmd, log_path = serve_command(args, model, quantization, cap, port), tmp / f"serve_{port}.log"
    case = {"model": model, "quantization": quantization, "max_gpu_memory": None if cap == "none" else parse_bytes(cap),
            "serve_command": "ruvon " + shlex.join(cmd[3:])}
    t0 = time.perf_counter()
    with open(log_path, "w") as log: proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        why = wait_healthy(proc, url, args.health_timeout)
        case["startup_s"] = time.perf_counter() - t0
        if why is not None: return case | {"fits": False, "error": error_line(log_path.read_text()), "exit": why}
        case |= {"fits": True, **kv_pool(url)}
        users = max(1, min(args.max_users, int(case["contexts_1024"])))
        case["loadtest"] = loadtest(args, url, users, tmp / f"loadtest_{port}.json") | {"concurrency": users}
        case["gpu_memory_mib_nvidia_smi"] = gpu_memory_mib(proc.pid)  # after the load test
        case["torch_reserved_bytes_after_load_test"] = kv_pool(url)["torch_reserved_bytes"]  # torch keeps what it reserved: the peak
        return case
    finally:
        proc.terminate()
        try: proc.wait(timeout=60)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait()


def case_line(c: dict) -> str:
    "One case, as progress."
    cap = "no cap" if c["max_gpu_memory"] is None else f"{c['max_gpu_memory'] / 2**30:g} GiB"
    head = f"{cap:>7} {Path(c['model']).name:>12} {c['quantization']:>5}: "
    if not c["fits"]: return head + f"does not fit — {c['error']}"
    lt = c["loadtest"]
    tail = f"load test error: {lt['error']}" if "error" in lt else (
        f"{lt['concurrency']} users: {lt['output_tokens_per_s']:,.0f} tok/s, TTFT p50 {lt['ttft_ms_p50']:.0f} ms, "
        f"TPOT p50 {lt['tpot_ms_p50']:.1f} ms, {lt['num_errors']} errors")
    return head + f"{c['kv_tokens']:,} KV tokens = {c['contexts_1024']:.1f} contexts; {tail}"


def markdown_table(result: dict) -> str:
    "The result as the notebook's table."
    rows = ["| cap | model | weights | fits | KV tokens | 1,024-token contexts | GPU MiB (nvidia-smi) | users | output tok/s | TTFT p50 ms | TPOT p50 ms |",
            "|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|"]
    for c in result["cases"]:
        cap = "—" if c["max_gpu_memory"] is None else f"{c['max_gpu_memory'] / 2**30:g} GiB"
        fmt = result["dtype"] if c["quantization"] == "none" else c["quantization"]
        if not c["fits"]:
            rows.append(f"| {cap} | {Path(c['model']).name} | {fmt} | no: {c['error'].removeprefix('error: ')} | | | | | | | |"); continue
        lt = c["loadtest"]
        nums = ["", "", "", ""] if "error" in lt else [str(lt["concurrency"]), f"{lt['output_tokens_per_s']:,.0f}", f"{lt['ttft_ms_p50']:.0f}", f"{lt['tpot_ms_p50']:.1f}"]
        mib = c.get("gpu_memory_mib_nvidia_smi")
        rows.append(f"| {cap} | {Path(c['model']).name} | {fmt} | yes | {c['kv_tokens']:,} | {c['contexts_1024']:.1f} | "
                    f"{'' if mib is None else f'{mib:,}'} | " + " | ".join(nums) + " |")
    return "\n".join(rows)


def main(argv=None):
    args = parse_args(argv)
    if args.table: return print(markdown_table(json.loads(Path(args.table).read_text())))
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    result = {"benchmark": "modest_gpu", "command": "python " + shlex.join(sys.argv), "device_name": device_name(device),
              "torch": torch.__version__, "load_format": args.load_format, "dtype": args.dtype, "prompt_words": args.prompt_words,
              "max_tokens": args.max_tokens, "duration_s": args.duration, "cases": []}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for cap in args.caps.split(","):
            for model in args.models.split(","):
                for quantization in args.quantizations.split(","):
                    result["cases"].append(run_case(args, model, quantization, cap, Path(tmp)))
                    print(case_line(result["cases"][-1]), flush=True)
    result["elapsed_s"] = time.perf_counter() - t0
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n{result['device_name']}, {result['elapsed_s']:.0f} s\n{markdown_table(result)}")


if __name__ == "__main__":
    main()
