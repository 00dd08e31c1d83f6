"""Part 3 benchmark: greedy generation with and without the KV cache, across output lengths.

Writes one JSON file with the device, dtype, command and, per output length, the median seconds and
tokens/s of each decoder. Example:

    python benchmarks/kv_cache.py --model gpt2 --load-format dummy --device cuda --json benchmarks/results/kv_cache_gpu_gpt2.json
"""
import json
import statistics
import time

import torch
from common import model_arguments, result_header

from ruvon.generate import RecomputeDecoder, decode_steps
from ruvon.kv_cache import CachedDecoder
from ruvon.loading import load_model


def time_generation(decoder, prompt_ids: list[int], max_tokens: int) -> float:
    "Seconds to generate exactly `max_tokens` greedy tokens (end-of-text ignored)."
    start = time.perf_counter()
    n = sum(1 for _ in decode_steps(decoder, prompt_ids, max_tokens, ignore_eos=True))
    if torch.cuda.is_available(): torch.cuda.synchronize()
    assert n == max_tokens, (n, max_tokens)
    return time.perf_counter() - start


def gpu_work_per_step(decoder, prompt_ids: list[int], context_len: int) -> dict:
    "CUDA kernels launched and GPU time they take (ms) for the step that produces token `context_len`."
    from torch.profiler import ProfilerActivity, profile
    ids = (prompt_ids * context_len)[: context_len - 1]
    decoder.prefill(ids[:-1])
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        decoder.step(ids[-1])
        torch.cuda.synchronize()
    kernels = [e for e in prof.events() if e.device_type.name == "CUDA"]
    return {"kernels": len(kernels), "gpu_ms": sum(e.device_time for e in kernels) / 1e3}


def launch_overhead_us(device: torch.device, n: int = 2000) -> float:
    "Host time per launch of a trivial kernel: the floor under any eager decode step."
    x = torch.zeros(1, device=device)
    torch.cuda.synchronize(); start = time.perf_counter()
    for _ in range(n): x.add_(1)
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / n * 1e6


def main(argv=None):
    p = model_arguments(__doc__.splitlines()[0])
    p.add_argument("--prompt-len", type=int, default=16)
    p.add_argument("--lengths", type=int, nargs="+", default=[16, 32, 64, 128, 256, 512])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    model = load_model(args.model, dtype=args.dtype, device=args.device, load_format=args.load_format)
    device = model.wte.weight.device
    prompt_ids = torch.randint(0, model.config.vocab_size, (args.prompt_len,), generator=torch.Generator().manual_seed(0)).tolist()
    decoders = {"recompute": RecomputeDecoder(model), "cached": CachedDecoder(model)}
    for d in decoders.values(): time_generation(d, prompt_ids, 8)  # warm-up: kernels, allocator
    rows = []
    for n in args.lengths:
        row = {"max_tokens": n}
        for name, d in decoders.items():
            row[f"{name}_s"] = statistics.median(time_generation(d, prompt_ids, n) for _ in range(args.repeats))
            row[f"{name}_tokens_per_s"] = n / row[f"{name}_s"]
        row["speedup"] = row["recompute_s"] / row["cached_s"]
        rows.append(row)
        print(f"N={n:4d} recompute {row['recompute_s']:8.3f} s  cached {row['cached_s']:8.3f} s  speedup {row['speedup']:6.1f}x", flush=True)
    extra = {}
    if device.type == "cuda":  # where the time goes: launches vs GPU work, at the longest context measured
        context = args.prompt_len + max(args.lengths)
        extra = {"launch_overhead_us": launch_overhead_us(device), "profiled_context_len": context,
                 "step_profile": {name: gpu_work_per_step(d, prompt_ids, context) for name, d in decoders.items()}}
        print(extra, flush=True)
    result = {**result_header("kv_cache", args, model), "prompt_len": args.prompt_len, "repeats": args.repeats, "rows": rows, **extra}
    with open(args.json, "w") as f: json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
