"""`ruvon bench throughput` of two ruvon versions in one process, interleaved, so both see the same GPU, clocks and host.

Separate `ruvon bench throughput` processes on a shared cloud GPU vary by 10-20% from run to run (measured in
benchmarks/results/model_runner_ab_gpu.json and ab_throughput_gpu.json's note), more than the changes they are
asked to judge. Here each round runs vLLM's random-dataset workload (256 prompts of 100-512 tokens, 256 output
tokens each; `bench.ThroughputWorkload`'s defaults) through a fresh engine of the older version, then of the current
one, each on its own copy of the same dummy weights. Both get the same fixed KV budget (`--kv-cache-memory`), since
two engines share one GPU here. Set up `ruvon_base` as for benchmarks/ab_latency.py, then:

    python benchmarks/ab_throughput.py --models gpt2 gpt2-xl --rounds 3 --json benchmarks/results/ab_throughput_gpu.json
"""
import argparse
import importlib
import json

import torch

from common import ab_compare


def setup(package: str, model: str, kv_cache_memory: int):
    "`package`'s bench module, model, tokenizer and config (fp16 dummy weights on CUDA, a fixed KV budget)."
    bench, loading = (importlib.import_module(f"{package}.{m}") for m in ("bench", "loading"))
    config = importlib.import_module(f"{package}.config").EngineConfig(kv_cache_memory=kv_cache_memory)
    return bench, loading.load_model(model, load_format="dummy", dtype="float16", device="cuda"), loading.load_tokenizer(model), config


def output_tokens_per_s(package: str, state) -> float:
    "Output tokens/s of one `bench throughput` run of the default workload on a fresh engine."
    bench, model, tok, config = state
    return bench.throughput_result(model, tok, config, bench.ThroughputWorkload())["metrics"]["output_tokens_per_s"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["gpt2", "gpt2-xl"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--kv-cache-memory", type=int, default=16 << 30)
    p.add_argument("--json")
    args = p.parse_args()
    result = {"benchmark": "ab_throughput", "device_name": torch.cuda.get_device_name(), "torch": torch.__version__, "args": vars(args)}
    result["models"] = ab_compare(args.models, args.rounds, lambda pkg, model: setup(pkg, model, args.kv_cache_memory),
                                  output_tokens_per_s, "output_tokens_per_s")
    if args.json:
        with open(args.json, "w") as f: json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
