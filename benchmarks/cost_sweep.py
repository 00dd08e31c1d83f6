"""Part 19 benchmark: $ per 1M output tokens against the number of concurrent users, on a real `ruvon serve`.

Starts `ruvon serve MODEL --gpu-cost-per-hour X` in a subprocess, then runs Part 15's closed-loop load test
at each concurrency level (streamed, `ignore_eos`, every prompt --input-len words of one GPT-2 token each,
every answer exactly --output-len tokens, --duration seconds per level), each level priced by Part 19's
`cost_probe`: the dollars the server charged (the sum of `ruvon:request_cost_dollars`) over the tokens it
generated, both as deltas of its /metrics around the level. The GPU demo (one H100, about two minutes):

    python benchmarks/cost_sweep.py --model gpt2 --load-format dummy --dtype float16 --concurrency 1 4 16 64 256 \\
        --json benchmarks/results/cost_sweep_gpu_gpt2.json --plot benchmarks/results/cost_sweep_gpu_gpt2.png

On a CPU, with the stand-in checkpoint (about a minute):

    python benchmarks/cost_sweep.py --model ../shared/data/checkpoints/ruvon-standin-2l --device cpu \\
        --concurrency 1 4 --output-len 16 --duration 5 --json /tmp/cost_sweep_cpu.json

More `ruvon serve` options go in one string: --serve-args="--max-num-seqs 512 --enforce-eager".
"""
import contextlib
import dataclasses
import json
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from common import CLI, device_name, free_port, model_arguments, wait_healthy

from ruvon.cost import DEFAULT_GPU_COST_PER_HOUR, cost_probe
from ruvon.loadtest import LoadTestConfig, loadtest_header, random_prompts, run_loadtest


def parse_args(argv=None):
    p = model_arguments(__doc__.splitlines()[0])
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64, 256], help="users, one level each")
    p.add_argument("--input-len", type=int, default=128, help="words per prompt (one GPT-2 token each)")
    p.add_argument("--output-len", type=int, default=128, help="tokens per answer (ignore_eos)")
    p.add_argument("--duration", type=float, default=8.0, help="seconds per level; requests in flight at the end finish and count")
    p.add_argument("--gpu-cost-per-hour", type=float, default=DEFAULT_GPU_COST_PER_HOUR)
    p.add_argument("--serve-args", default="", help="more `ruvon serve` options, as one string")
    p.add_argument("--plot", default=None, help="PNG of $ per 1M output tokens against users")
    p.add_argument("--health-timeout", type=float, default=300.0, help="seconds to wait for the server to load")
    return p.parse_args(argv)


def serve_command(args, port: int) -> list[str]:
    "`ruvon serve` with the model, placement and price options of `args`, run by this interpreter."
    cmd = [sys.executable, "-c", CLI, "serve", args.model, "--port", str(port), "--load-format", args.load_format,
           "--dtype", args.dtype, "--gpu-cost-per-hour", str(args.gpu_cost_per_hour)]
    return cmd + (["--device", args.device] if args.device else []) + shlex.split(args.serve_args)


def tail(path: str, num_lines: int = 30) -> str:
    with open(path) as f: return "".join(f.readlines()[-num_lines:])


@contextlib.contextmanager
def ruvon_server(cmd: list[str], port: int, timeout_s: float) -> Iterator[str]:
    "Run `cmd` (a `ruvon serve`), logging to a file (a pipe nobody reads would fill up); yield its URL once healthy; always stop it."
    log_path = tempfile.mkstemp(prefix="ruvon_serve_", suffix=".log")[1]
    print(f"$ {shlex.join(cmd)}\n  (log: {log_path})", flush=True)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        if (why := wait_healthy(proc, url, timeout_s)) is not None: sys.exit(f"{why}; its log:\n{tail(log_path)}")
        yield url
    finally:
        proc.terminate()
        try: proc.wait(timeout=60)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait()


def run_level(url: str, cfg: LoadTestConfig, users: int, prompts) -> dict:
    "One closed-loop level of `users`, priced from the server's /metrics (its test request is not)."
    (level,) = run_loadtest(url, dataclasses.replace(cfg, concurrency=(users,)), prompts, probe=cost_probe(url))["levels"]
    return level


def _f(x, width: int, spec: str) -> str: return f"{x:>{width}{spec}}" if x is not None else f"{'-':>{width}}"


def level_line(lv: dict) -> str:
    "One level, as progress and as a row of the final table."
    ttft, tpot = lv["ttft_ms"], lv["tpot_ms"]
    return (f"{lv['concurrency']:>6} {lv['num_ok']:>6} {lv['num_errors']:>4} {lv['output_tokens_charged']:>9,} {lv['usd_charged']:>11.3g} "
            f"{_f(lv['usd_per_1m_output_tokens'], 9, '.3f')} {lv['output_tokens_per_s']:>9,.0f} {_f(ttft['p50'], 8, '.1f')} "
            f"{_f(ttft['p99'], 8, '.1f')} {_f(tpot['p50'], 8, '.2f')} {_f(tpot['p99'], 8, '.2f')}")


HEADER = (f"{'users':>6} {'ok':>6} {'err':>4} {'out tok':>9} {'$ charged':>11} {'$/1M out':>9} {'tok/s':>9} "
          f"{'TTFTp50':>8} {'TTFTp99':>8} {'TPOTp50':>8} {'TPOTp99':>8}   (ms)")


def plot(result: dict, path: str) -> None:
    "$ per 1M output tokens against concurrent users (log-log), the model, device and price in the title."
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter, NullLocator
    priced = [lv for lv in result["levels"] if lv["usd_per_1m_output_tokens"] is not None]  # a level with no output has no price
    users, usd = [lv["concurrency"] for lv in priced], [lv["usd_per_1m_output_tokens"] for lv in priced]
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    ax.plot(users, usd, "o-")
    for u, d in zip(users, usd): ax.annotate(f"${d:.3g}", (u, d), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.set_xscale("log", base=2); ax.set_xticks(users, [str(u) for u in users]); ax.xaxis.set_minor_locator(NullLocator())
    ax.set_yscale("log"); ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"${v:g}")); ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel="concurrent users", ylabel="$ per 1M output tokens", ylim=(min(usd) / 2, max(usd) * 2)); ax.grid(alpha=0.3)
    ax.set_title(f"ruvon · {Path(result['model']).name} · {result['device_name']} at ${result['gpu_cost_per_hour']:g}/h\n"
                 f"{result['input_len']} prompt + {result['output_len']} output tokens a request, {result['duration_s']:g} s a level",
                 fontsize=9)
    fig.savefig(path, dpi=120)


def main(argv=None):
    args = parse_args(argv)
    port = free_port()
    cmd = serve_command(args, port)
    cfg = LoadTestConfig(tuple(args.concurrency), num_requests=None, duration_s=args.duration, max_tokens=args.output_len, ignore_eos=True)
    prompts = random_prompts(1024, args.input_len)
    levels = []
    with ruvon_server(cmd, port, args.health_timeout) as url:
        print(HEADER, flush=True)
        for users in args.concurrency:
            levels.append(run_level(url, cfg, users, prompts))
            print(level_line(levels[-1]), flush=True)
        header = loadtest_header("python " + shlex.join(sys.argv), url, args.model, cfg, prompts)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    result = {**header, "benchmark": "cost_sweep", "device_name": device_name(device), "torch": torch.__version__,
              "load_format": args.load_format, "dtype": args.dtype, "gpu_cost_per_hour": args.gpu_cost_per_hour,
              "input_len": args.input_len, "output_len": args.output_len, "duration_s": args.duration,
              "serve_command": shlex.join(cmd), "levels": levels}
    print(f"\n{result['model']} on {result['device_name']}, ${args.gpu_cost_per_hour:g}/h\n{HEADER}", *map(level_line, levels), sep="\n")
    with open(args.json, "w") as f: json.dump(result, f, indent=1)
    if args.plot: plot(result, args.plot)


if __name__ == "__main__":
    main()
