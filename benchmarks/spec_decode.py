"""Speculative decoding (Part 16) against plain decoding, same process, same GPU, and Hugging Face assisted generation as the peer.

Two studies, one result JSON:

* `standins`: the trained stand-in pair (6-layer target, 2-layer draft) and the n-gram lookup, greedy, on held-out text
  (Shakespeare and essays, from the part of the corpora after the first 90%) and on a copy-heavy workload (a passage of the
  Python docs, then its first tokens again, so the continuation repeats it): acceptance, mean accepted length and output
  tokens/s at batch 1 and 32, plain vs speculative; at batch 1 also transformers' `generate(assistant_model=...)`.
* `controlled`: gpt2-xl (dummy fp16 weights) with gpt2 as the draft. Random weights agree on nothing, so the draft model runs
  (its cost is real) but its tokens are replaced by the target's own greedy continuation (from a plain run), each token swapped
  for a random one with probability 1 - alpha. Sweep alpha and k at batch 1 and 32; the measured speedup is compared with
  (1 - alpha^(k+1)) / ((1 - alpha)(1 + k c)), c = draft decode step time / target decode step time measured in the same run.

    python benchmarks/spec_decode.py --json benchmarks/results/spec_decode_gpu.json
"""
import argparse
import dataclasses
import json
import os
import random
import sys
import time
from pathlib import Path

import torch

from ruvon.config import EngineConfig
from ruvon.cuda_graphs import GraphModelRunner
from ruvon.engine import LLMEngine, run_to_completion
from ruvon.loading import load_model, load_tokenizer
from ruvon.outputs import SamplingParams
from ruvon.proposers import DraftModelProposer, Proposal
from ruvon.rejection import expected_speedup
from ruvon.speculative import SpecDecodeEngine, SpecDecodeStats


def sync(device):
    if device.type == "cuda": torch.cuda.synchronize(device)


def timed(engine, prompts, output_len: int) -> tuple[float, list[list[int]]]:
    "Output tokens/s of one greedy run of `prompts` (all added at once), and the tokens."
    params = SamplingParams(temperature=0, max_tokens=output_len, ignore_eos=True)
    device = engine.runner.device
    sync(device); t0 = time.perf_counter()
    outs = run_to_completion(engine, prompts, [params] * len(prompts))
    sync(device)
    tokens = [o.outputs[0].token_ids for o in outs]
    return sum(map(len, tokens)) / (time.perf_counter() - t0), tokens


def reset_stats(engine) -> SpecDecodeStats:
    "The engine's counters, zeroed (a new k gets counters of its length)."
    if len(engine.spec_stats.accepted_per_pos) != engine.spec.num_speculative_tokens:
        engine.spec_stats = SpecDecodeStats(engine.spec.num_speculative_tokens)
    engine.spec_stats.reset()
    return engine.spec_stats


def acceptance(s: SpecDecodeStats) -> dict:
    return {"acceptance_rate": s.acceptance_rate, "mean_accepted_length": s.mean_accepted_length, "num_drafts": s.num_drafts,
            "accepted_per_pos": list(s.accepted_per_pos)}


def best_of(runs: int, fn):
    "The run with the highest tokens/s of `runs` (first-call costs and clock noise stay out)."
    return max((fn() for _ in range(runs)), key=lambda r: r[0])


# ---- the stand-in pair -------------------------------------------------------------------------------------------------

def standin_prompts(tok, data: Path, batch: int, copy_heavy: bool, prompt_len: int = 96) -> list[list[int]]:
    "Held-out prompts (from the last 10% of two corpora), or copy-heavy ones (a docs passage, then its first 16 tokens again)."
    rng = random.Random(0)
    if copy_heavy:
        ids = tok.encode((data / "corpus" / "python-docs.txt").read_text(encoding="utf-8")[-400_000:])
        starts = [rng.randrange(0, len(ids) - 400) for _ in range(batch)]
        return [ids[s : s + 200] + tok.encode("\n\n") + ids[s : s + 16] for s in starts]
    texts = [(data / "corpus" / name).read_text(encoding="utf-8") for name in ("tinyshakespeare.txt", "paulgraham.txt")]
    out = []
    for i in range(batch):
        t = texts[i % 2]
        ids = tok.encode(t[int(0.9 * len(t)):][: 200_000])
        s = rng.randrange(0, len(ids) - prompt_len)
        out.append(ids[s : s + prompt_len])
    return out


def hf_assisted(target, draft, prompt: list[int], output_len: int, pad_id: int) -> float:
    "transformers' assisted generation (greedy, batch 1) on the same weights: output tokens/s."
    from ruvon.bench import hf_model
    hf, assistant = hf_model(target), hf_model(draft)
    ids = torch.tensor([prompt], device=hf.device)
    kw = dict(attention_mask=torch.ones_like(ids), max_new_tokens=output_len, min_new_tokens=output_len, do_sample=False, pad_token_id=pad_id)
    hf.generate(ids, assistant_model=assistant, **{**kw, "max_new_tokens": 8, "min_new_tokens": 8})  # warm-up
    best = 0.0
    for _ in range(3):
        sync(hf.device); t0 = time.perf_counter()
        out = hf.generate(ids, assistant_model=assistant, **kw)
        sync(hf.device)
        best = max(best, (out.shape[1] - ids.shape[1]) / (time.perf_counter() - t0))
    return best


def standins(args, device) -> dict:
    data = Path(os.environ.get("RUVON_DATA", "../shared/data"))
    target_path, draft_path = data / "checkpoints/ruvon-standin-6l", data / "checkpoints/ruvon-standin-2l"
    target, draft = load_model(str(target_path), device=device, dtype=args.dtype), load_model(str(draft_path), device=device, dtype=args.dtype)
    tok = load_tokenizer(str(target_path))
    config = EngineConfig(kv_cache_memory=args.kv_cache_memory, max_num_seqs=256)
    plain = LLMEngine(target, tok, config, runner=GraphModelRunner)
    methods = {"draft_model": dict(speculative={"model": str(draft_path), "num_speculative_tokens": args.standin_k}, draft=draft),
               "ngram": dict(speculative={"method": "ngram", "num_speculative_tokens": args.standin_k, "prompt_lookup_min": 2, "prompt_lookup_max": 4})}
    engines = {m: SpecDecodeEngine(target, tok, config, runner=GraphModelRunner, **kw) for m, kw in methods.items()}
    rows = []
    for workload in ("held_out", "copy_heavy"):
        for batch in args.batches:
            prompts = standin_prompts(tok, data, batch, workload == "copy_heavy")
            timed(plain, prompts[:1], 8)  # warm-up
            base_tps, base_tokens = best_of(args.repeats, lambda: timed(plain, prompts, args.output_len))
            row = {"workload": workload, "batch_size": batch, "plain_tokens_per_s": base_tps}
            for m, engine in engines.items():
                timed(engine, prompts[:1], 8)
                stats = reset_stats(engine)
                tps, tokens = best_of(args.repeats, lambda: timed(engine, prompts, args.output_len))
                row[m] = {"tokens_per_s": tps, "speedup": tps / base_tps, "same_tokens_as_plain": tokens == base_tokens, **acceptance(stats)}
            if batch == 1 and args.hf:
                row["hf_assisted_tokens_per_s"] = hf_assisted(target, draft, prompts[0], args.output_len, tok.eos_token_id)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return {"target": str(target_path.name), "draft": str(draft_path.name), "k": args.standin_k, "output_len": args.output_len, "rows": rows}


# ---- gpt2-xl with an acceptance-controlled draft -----------------------------------------------------------------------

class ControlledProposer:
    "Runs the real draft model (its cost is real), then proposes the target's own continuation with each token kept with probability alpha."
    def __init__(self, inner: DraftModelProposer, reference: dict[tuple, list[int]], vocab_size: int, seed: int = 0):
        self.inner, self.reference, self.vocab_size, self.alpha, self.rng = inner, reference, vocab_size, 1.0, random.Random(seed)

    def retain(self, seq_ids): self.inner.retain(seq_ids)
    def forget(self, seq_id): self.inner.forget(seq_id)

    def propose(self, seqs, num_tokens, picks):
        out = []
        for seq, p in zip(seqs, self.inner.propose(seqs, num_tokens, picks)):
            ref, at = self.reference[tuple(seq.prompt_ids)], len(seq.output_ids)
            out.append(Proposal([ref[at + i] if self.rng.random() < self.alpha else (ref[at + i] + 1 + self.rng.randrange(self.vocab_size - 1)) % self.vocab_size
                                 for i in range(len(p.token_ids)) if at + i < len(ref)]))
        return out


def decode_step_ms(engine, batch: int, tokens: int = 64) -> float:
    "Milliseconds per decode step of a plain engine at `batch` (greedy, after the prefill)."
    prompts = [[1 + i] * 16 for i in range(batch)]
    timed(engine, prompts, 4)
    device = engine.runner.device
    sync(device); t0 = time.perf_counter(); timed(engine, prompts, 1); prefill = time.perf_counter() - t0
    sync(device); t0 = time.perf_counter(); timed(engine, prompts, tokens + 1); total = time.perf_counter() - t0
    return 1e3 * (total - prefill) / tokens


def profiled(engine, device) -> dict:
    "Wrap the parts of a speculative step with synchronized timers; returns the dict of accumulated seconds (and calls)."
    acc = {"propose": 0.0, "target_execute": 0.0, "verify_and_emit": 0.0, "steps": 0}
    def timer(name, fn):
        def wrapped(*a, **kw):
            sync(device); t0 = time.perf_counter()
            out = fn(*a, **kw)
            sync(device); acc[name] += time.perf_counter() - t0
            return out
        return wrapped
    proposer = engine.proposer
    proposer.propose = timer("propose", proposer.propose)
    engine.runner.execute = timer("target_execute", engine.runner.execute)
    engine._sample = timer("verify_and_emit", engine._sample)
    step = engine.step
    def counted():
        acc["steps"] += 1
        return step()
    engine.step = counted
    return acc


def controlled(args, device) -> dict:
    target = load_model(args.target, load_format="dummy", dtype=args.controlled_dtype, device=device)
    draft = load_model(args.draft, load_format="dummy", dtype=args.controlled_dtype, device=device)
    tok = load_tokenizer("gpt2")
    config = EngineConfig(kv_cache_memory=args.kv_cache_memory, max_num_seqs=256)
    plain_target = LLMEngine(target, tok, config, runner=GraphModelRunner)
    plain_draft = LLMEngine(draft, tok, config, runner=GraphModelRunner)
    spec = SpecDecodeEngine(target, tok, config, runner=GraphModelRunner, draft=draft,
                            speculative={"model": args.draft, "num_speculative_tokens": max(args.ks), "disable_by_batch_size": args.disable_by_batch_size})
    rng, rows, costs = random.Random(1), [], {}
    for batch in args.batches:
        prompts = [[rng.randrange(50257) for _ in range(32)] for _ in range(batch)]
        base_tps, reference = best_of(args.repeats, lambda: timed(plain_target, prompts, args.output_len))
        c = decode_step_ms(plain_draft, batch) / decode_step_ms(plain_target, batch)
        costs[batch] = c
        proposer = ControlledProposer(spec.proposer if not isinstance(spec.proposer, ControlledProposer) else spec.proposer.inner,
                                      {tuple(p): r for p, r in zip(prompts, reference)}, target.config.vocab_size)
        spec.proposer = proposer
        for k in args.ks:
            spec.spec = dataclasses.replace(spec.spec, num_speculative_tokens=k)
            for alpha in args.alphas:
                proposer.alpha = alpha
                timed(spec, prompts[:1], 8)
                stats = reset_stats(spec)
                tps, tokens = best_of(args.repeats, lambda: timed(spec, prompts, args.output_len))
                row = {"batch_size": batch, "k": k, "alpha": alpha, "plain_tokens_per_s": base_tps, "spec_tokens_per_s": tps,
                       "speedup": tps / base_tps, "expected_speedup": expected_speedup(alpha, k, c), "c": c,
                       "same_tokens_as_plain": tokens == reference, **acceptance(stats)}
                rows.append(row)
                print(json.dumps({k_: (round(v, 3) if isinstance(v, float) else v) for k_, v in row.items() if k_ != "accepted_per_pos"}), flush=True)
    profile = {}
    if args.profile:  # where a step's time goes, at k = 4, alpha = 0.9, for each batch size (timers synchronize: slower than above)
        spec.spec = dataclasses.replace(spec.spec, num_speculative_tokens=4); proposer.alpha = 0.9
        for batch in args.batches:
            prompts = [[rng.randrange(50257) for _ in range(32)] for _ in range(batch)]
            _, reference = timed(plain_target, prompts, args.output_len)
            proposer.reference = {tuple(p): r for p, r in zip(prompts, reference)}
            acc = profiled(spec, device)
            sync(device); t0 = time.perf_counter(); timed(spec, prompts, args.output_len); total = time.perf_counter() - t0
            del spec.step, spec._sample; spec.runner.__dict__.pop("execute", None); proposer.__dict__.pop("propose", None)
            profile[batch] = {"total_s": total, **acc}
            print("profile", batch, json.dumps(profile[batch]), flush=True)
    return {"target": f"{args.target} (dummy {args.controlled_dtype})", "profile": profile, "draft": f"{args.draft} (dummy {args.controlled_dtype}), tokens replaced (see above)", "output_len": args.output_len,
            "draft_over_target_step_cost": costs, "rows": rows}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="float16", help="the stand-ins' dtype")
    p.add_argument("--output-len", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--standin-k", type=int, default=4)
    p.add_argument("--ks", type=int, nargs="+", default=[2, 4, 6])
    p.add_argument("--alphas", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8, 0.9])
    p.add_argument("--target", default="gpt2-xl", help="the controlled study's target")
    p.add_argument("--draft", default="gpt2", help="the controlled study's draft")
    p.add_argument("--controlled-dtype", default="float16")
    p.add_argument("--kv-cache-memory", type=int, default=8 << 30, help="bytes of KV per target engine")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    p.add_argument("--only", choices=["standins", "controlled"], default=None)
    p.add_argument("--no-hf", dest="hf", action="store_false")
    p.add_argument("--disable-by-batch-size", type=int, default=None, help="the controlled study's speculative_config.disable_by_batch_size")
    p.add_argument("--profile", action="store_true", help="also time the parts of a speculative step (controlled study)")
    p.add_argument("--rows-sweep", default=None, help="a benchmarks/fused_decode.py result with a rows sweep: 2-8 token rows take "
                   "Part 12b's few-row GEMV at its best tiles where it beat tl.dot (instead of linear_config's choice)")
    args = p.parse_args()
    device = torch.device(args.device)
    if args.rows_sweep:
        import ruvon.fused
        from fused_decode import rows_sweep_config
        ruvon.fused.linear_config = rows_sweep_config(args.rows_sweep)
    result = {"benchmark": "spec_decode", "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "command": "python " + " ".join(sys.argv), "args": vars(args)}
    for study, run in (("standins", standins), ("controlled", controlled)):
        if args.only in (None, study):
            result[study] = run(args, device)
            Path(args.json).write_text(json.dumps(result, indent=1) + "\n")  # after each study: a partial result survives a timeout


if __name__ == "__main__":
    main()
