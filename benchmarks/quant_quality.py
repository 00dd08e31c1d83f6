"""Part 17 quality: perplexity and greedy agreement of every quantization method on the trained stand-ins (CPU).

For each stand-in (ruvon-standin-6l, ruvon-standin-2l) and each weight format — float32, float16, int8, int4 with groups of
32/64/128, bitsandbytes int8 (LLM.int8()) and NF4 — on the same slice of every corpus in ../shared/data/corpus:

* weight bytes with the unquantized weights in float16 (Part 17c's `quantized_weight_bytes`);
* perplexity over the corpus's last `--windows` x `--window` tokens (non-overlapping windows, every token scored but the first
  of each window), and over all the slices together;
* greedy agreement with float32: `--prompts` prompts (48 tokens from the slices), 64 greedy tokens each with Part 3's KV cache;
  the mean length of the common prefix with float32's tokens, and the share of positions that match.

All arithmetic is float32 on the CPU: "float16" is the float32 model with its weights rounded to float16, so every difference
in the table is the stored weights' (and, for bitsandbytes int8, its 8-bit activations').
Run:  python benchmarks/quant_quality.py --json benchmarks/results/quant_quality_cpu.json
"""
import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

from ruvon.generate import decode_steps
from ruvon.kv_cache import CachedDecoder
from ruvon.loading import load_model, load_tokenizer
from ruvon.quantization import QuantizationConfig
from ruvon.quantized import quantize_model, quantized_weight_bytes

FORMATS = {"float32": None, "float16": None, "int8": QuantizationConfig("int8"),
           **{f"int4-g{g}": QuantizationConfig("int4", group_size=g) for g in (32, 64, 128)},
           "bitsandbytes-int8": QuantizationConfig("bitsandbytes-int8"), "bitsandbytes-nf4": QuantizationConfig("bitsandbytes-nf4")}


def corpus_slices(tok, corpus_dir: Path, num_tokens: int) -> dict[str, list[int]]:
    "The last `num_tokens` tokens of every corpus (encoded from the last 8 bytes per token of its text, which is plenty)."
    out = {}
    for path in sorted(corpus_dir.glob("*.txt")):
        ids = tok.encode(path.read_text(encoding="utf-8")[-8 * num_tokens:])
        if len(ids) < num_tokens: raise ValueError(f"{path.name}: only {len(ids)} tokens in its tail")
        out[path.stem] = ids[-num_tokens:]
    return out


def bytes_in_float16(cfg, fmt: str) -> int:
    "The weight bytes of this format with everything unquantized in float16 (as served on a GPU); float32 in float32."
    return quantized_weight_bytes(cfg, FORMATS[fmt], torch.float32 if fmt == "float32" else torch.float16)


def load_format(checkpoint: str, name: str):
    model = load_model(checkpoint, dtype="float32", device="cpu")
    if name == "float16":
        with torch.no_grad():
            for p in model.parameters(): p.copy_(p.half().float())
    return quantize_model(model, FORMATS[name]) if FORMATS[name] is not None else model


@torch.no_grad()
def perplexity(model, ids: list[int], window: int) -> float:
    x = torch.tensor(ids).view(-1, window)               # (windows, window)
    nll, count = 0.0, 0
    for rows in x.split(4):                              # a few windows at a time keeps the logits small
        logits = model(rows)[:, :-1].float()
        nll += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1), reduction="sum").item()
        count += rows[:, 1:].numel()
    return math.exp(nll / count)


def greedy(model, prompts: list[list[int]], max_tokens: int) -> list[list[int]]:
    return [[s.token_id for s in decode_steps(CachedDecoder(model), p, max_tokens, ignore_eos=True)] for p in prompts]


def agreement(tokens: list[list[int]], reference: list[list[int]]) -> dict:
    prefix = [next((i for i, (a, b) in enumerate(zip(t, r)) if a != b), len(r)) for t, r in zip(tokens, reference)]
    same = sum(a == b for t, r in zip(tokens, reference) for a, b in zip(t, r))
    return {"mean_common_prefix": sum(prefix) / len(prefix), "position_match": same / sum(len(r) for r in reference)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", required=True)
    p.add_argument("--data", default=os.environ.get("RUVON_DATA", "../shared/data"))
    p.add_argument("--window", type=int, default=512)
    p.add_argument("--windows", type=int, default=8)
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=64)
    args = p.parse_args(argv)
    torch.manual_seed(0); torch.set_num_threads(os.cpu_count() or 1)
    data = Path(args.data)
    result = {"benchmark": "quant_quality", "device": f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} threads)",
              "torch": torch.__version__, "command": "python " + " ".join(sys.argv), "args": vars(args), "models": {}}
    for name in ("ruvon-standin-6l", "ruvon-standin-2l"):
        checkpoint = str(data / "checkpoints" / name)
        tok = load_tokenizer(checkpoint)
        slices = corpus_slices(tok, data / "corpus", args.window * args.windows)
        corpora = list(slices.values())
        prompts = [corpora[i % len(corpora)][(i // len(corpora)) * args.window:][:48] for i in range(args.prompts)]  # corpus by corpus
        rows, reference = {}, None
        for fmt in FORMATS:
            t0 = time.perf_counter()
            model = load_format(checkpoint, fmt)
            ppl = {corpus: perplexity(model, ids, args.window) for corpus, ids in slices.items()}
            tokens = greedy(model, prompts, args.max_tokens)
            reference = reference or tokens
            rows[fmt] = {"weight_bytes_float16": bytes_in_float16(model.config, fmt), "perplexity": ppl,
                         "perplexity_all": math.exp(sum(map(math.log, ppl.values())) / len(ppl)),  # every slice has as many tokens
                         "greedy_vs_float32": agreement(tokens, reference)}
            print(name, fmt, json.dumps(rows[fmt]), f"{time.perf_counter() - t0:.0f} s", flush=True)
        result["models"][name] = rows
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
