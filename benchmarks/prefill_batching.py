"""Part 7 benchmark: prefill B prompts serially vs as one right-padded batch.

Prompt lengths are drawn uniformly from [--min-len, --max-len] with a fixed seed; each configuration is
timed as the median of --repeats runs after a warm-up. Example:

    python benchmarks/prefill_batching.py --model gpt2 --load-format dummy --device cuda --json benchmarks/results/prefill_batching_gpu_gpt2.json
"""
import json
import statistics
import time

import torch
from common import model_arguments, result_header

from ruvon.batching import prefill_batch
from ruvon.loading import load_model


def sync(device: torch.device) -> None:
    if device.type == "cuda": torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    sync(device); start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


@torch.no_grad()
def serial_prefill(model, prompts):
    "One forward pass per prompt, each into its own KV cache (Part 3's prefill)."
    return [prefill_batch(model, [p])[0] for p in prompts]


def main(argv=None):
    p = model_arguments(__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 5, 10, 20, 40])
    p.add_argument("--min-len", type=int, default=32)
    p.add_argument("--max-len", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)

    model = load_model(args.model, dtype=args.dtype, device=args.device, load_format=args.load_format)
    device, gen = model.wte.weight.device, torch.Generator().manual_seed(0)
    rows = []
    for b in args.batch_sizes:
        lengths = torch.randint(args.min_len, args.max_len + 1, (b,), generator=gen).tolist()
        prompts = [torch.randint(0, model.config.vocab_size, (n,), generator=gen).tolist() for n in lengths]
        for fn in (lambda: serial_prefill(model, prompts), lambda: prefill_batch(model, prompts)): timed(fn, device)  # warm-up
        serial = statistics.median(timed(lambda: serial_prefill(model, prompts), device) for _ in range(args.repeats))
        batched = statistics.median(timed(lambda: prefill_batch(model, prompts), device) for _ in range(args.repeats))
        tokens = sum(lengths)
        row = {"batch_size": b, "prompt_tokens": tokens, "padding_efficiency": tokens / (b * max(lengths)),
               "serial_s": serial, "batched_s": batched, "serial_tokens_per_s": tokens / serial,
               "batched_tokens_per_s": tokens / batched, "speedup": serial / batched}
        rows.append(row)
        print(f"B={b:3d} tokens={tokens:6d} serial {serial * 1e3:8.1f} ms  batched {batched * 1e3:8.1f} ms  speedup {row['speedup']:5.2f}x", flush=True)
    result = {**result_header("prefill_batching", args, model), "prompt_len_range": [args.min_len, args.max_len],
              "repeats": args.repeats, "rows": rows}
    with open(args.json, "w") as f: json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
