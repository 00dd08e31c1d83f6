"""Batch-1 decode latency of two ruvon versions in one process, interleaved, so both see the same GPU, clocks and host.

Separate `ruvon bench latency` processes on a shared cloud GPU vary by 10-30% from run to run (more than the
changes they are asked to judge); here each round times one 128-token greedy generation with the older engine,
then one with the current engine, on the same dummy weights shapes. Copy the older checkout's `ruvon/` folder to
`ruvon_base/` in a folder on PYTHONPATH, with its absolute `ruvon.` imports renamed `ruvon_base.`, then:

    python benchmarks/ab_latency.py --models gpt2 gpt2-xl --rounds 12 --json benchmarks/results/ab_latency_gpu.json
"""
import argparse
import importlib
import json
import time

import torch

from common import ab_compare


def engine(package: str, model: str):
    "An `LLM` of `package` (ruvon or ruvon_base) for batch-1 decoding: fp16 dummy weights, 4 GiB of KV, graphs for 1-16 sequences."
    try: facade = importlib.import_module(f"{package}.llm").LLM  # since the course reorder (issue #11) LLM is in ruvon.llm
    except ModuleNotFoundError: facade = importlib.import_module(f"{package}.engine").LLM
    llm = facade(model, load_format="dummy", dtype="float16", max_num_seqs=16, kv_cache_memory=4 << 30)
    return llm, importlib.import_module(f"{package}.sampling").SamplingParams


def ms_per_token(llm, SamplingParams, input_len: int, output_len: int) -> float:
    "Wall milliseconds per output token of one greedy generation (its prefill included)."
    params = SamplingParams(temperature=0, max_tokens=output_len, ignore_eos=True)
    torch.cuda.synchronize(); t0 = time.perf_counter()
    llm.generate([[1] * input_len], params)
    torch.cuda.synchronize()
    return 1e3 * (time.perf_counter() - t0) / output_len


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["gpt2", "gpt2-xl"])
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--input-len", type=int, default=32)
    p.add_argument("--output-len", type=int, default=128)
    p.add_argument("--json")
    args = p.parse_args()
    result = {"benchmark": "ab_latency", "device_name": torch.cuda.get_device_name(), "torch": torch.__version__, "args": vars(args)}
    result["models"] = ab_compare(args.models, args.rounds, engine,
                                  lambda pkg, state: ms_per_token(*state, args.input_len, args.output_len), "ms", warmup=True)
    if args.json:
        with open(args.json, "w") as f: json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
