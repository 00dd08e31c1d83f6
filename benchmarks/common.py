"""What every benchmark script shares: the model options, the device's name and JSON header from `ruvon.bench`, and
how to start a `ruvon serve` process and wait for it."""
import argparse
import socket
import subprocess
import sys
import time

from ruvon.bench import device_name  # noqa: F401  (re-exported for the scripts)
from ruvon.bench import result_header as bench_header


def model_arguments(description: str) -> argparse.ArgumentParser:
    "An argument parser with the options that choose and place the model, and --json for the result."
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--model", required=True, help="local directory or Hub id")
    p.add_argument("--load-format", default="auto", help="auto, or dummy for random weights")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--json", required=True, help="where to write the result")
    return p


def result_header(name: str, args, model) -> dict:
    "The fields every result JSON starts with: what ran, where, with which software, and the command that ran it."
    return bench_header(name, args.model, args.load_format, model, "python " + " ".join(sys.argv))


# The GPU machine has the package but no `ruvon` console script: run the CLI through this interpreter.
CLI = "import sys; from ruvon.cli import app; sys.argv[0] = 'ruvon'; app()"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(proc: subprocess.Popen, url: str, timeout_s: float) -> str | None:
    "Poll `url`/health until 200 (None); or why not: the server exited, or took longer than `timeout_s`."
    import httpx
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None: return f"ruvon serve exited with {proc.returncode}"
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200: return None
        except httpx.HTTPError: pass
        time.sleep(0.3)
    return f"ruvon serve was not healthy within {timeout_s:g} s"


AB_PACKAGES = ("ruvon_base", "ruvon")  # the older checkout (renamed, see benchmarks/ab_latency.py) and this one


def ab_compare(models, rounds: int, setup, measure, metric: str, warmup: bool = False) -> dict:
    """Interleaved A/B of two ruvon versions in one process: for each model, `setup(package, model)` for both packages,
    then `rounds` times `measure(package, state)` of the older version followed by the current one, so both see the
    same GPU clocks and host noise. Returns per model each version's median and runs of `metric`, and the ratio."""
    import statistics
    import torch
    out = {}
    for model in models:
        states = {pkg: setup(pkg, model) for pkg in AB_PACKAGES}
        if warmup:
            for pkg, state in states.items(): measure(pkg, state)
        runs = {pkg: [] for pkg in AB_PACKAGES}
        for _ in range(rounds):
            for pkg, state in states.items():
                runs[pkg].append(measure(pkg, state))
                torch.cuda.empty_cache()
        summary = {pkg: {f"median_{metric}": statistics.median(r), "runs": r} for pkg, r in runs.items()}
        summary["current_over_base_median"] = summary["ruvon"][f"median_{metric}"] / summary["ruvon_base"][f"median_{metric}"]
        out[model] = summary
        print(model, {k: (round(v[f"median_{metric}"], 4) if isinstance(v, dict) else round(v, 4)) for k, v in summary.items()}, flush=True)
        del states; torch.cuda.empty_cache()
    return out
