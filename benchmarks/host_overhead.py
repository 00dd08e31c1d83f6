"""Host overhead of `LLMEngine.step()`: the Python work of one decode-only step at 256 running sequences, on the CPU.

A tiny random GPT-2 (one layer, n_embd 64) keeps the forward pass cheap; forward hooks time it, the argmax over the
logits (GPU work on a GPU) is timed apart, and the rest of the step's wall time is host overhead: scheduling,
building the step's inputs, sampling, detokenizing, finish checks.
Both decode paths run: `eager` (the model runner's eager forward over a `PagedStep`, the CPU engine's path) and
`graphs` (the runner's `padded` decode mode: `DecodeGraphs(capture=False)` with fixed-width block tables, so
`DecodeGraphs.run` runs exactly as on a CUDA GPU, minus the replay). A cProfile of each run says where the host time goes, and a digest
of every output (token ids, text, finish reasons) shows that a change kept the outputs identical.

The tiny model's paged attention still gathers tens of megabytes per step on the CPU, which leaves the caches cold
for the host work after it (on a GPU the host's caches are not disturbed), so each path also runs with `stub`: the
same model whose forward pass is replaced by a near-free lookup. Its host time is the closer estimate of the
GPU host's; the tiny model's is an upper bound. The
vocabulary is cut to 4,096 tokens (prompts draw from it) because the argmax over (256, vocab) logits, GPU work on a
GPU, would otherwise cost the CPU more than the host work being measured.

    python benchmarks/host_overhead.py --label before --json benchmarks/results/host_overhead_cpu.json
    python benchmarks/host_overhead.py --label after --json benchmarks/results/host_overhead_cpu.json

Each run is stored under its label in the JSON file (other labels already there are kept). It needs the gpt2
tokenizer from the Hub cache; for "before" numbers, run it with PYTHONPATH pointing at a checkout of the older ruvon.
"""
import argparse
import cProfile
import hashlib
import itertools
import json
import os
import platform
import pstats
import random
import sys
import time

import torch
import torch.nn.functional as F
import functools

from ruvon.cuda_graphs import GraphModelRunner
from ruvon.engine import EngineConfig, LLMEngine
from ruvon.loading import load_tokenizer
from ruvon.model import GPT2, GPT2Config
from ruvon.sampling import SamplingParams


class StubGPT2(GPT2):
    "The tiny GPT-2 with an almost free forward pass: each token's logits point at a fixed function of the token."
    def forward(self, input_ids, cache=None, last_only=False, logits_at=None):
        ids = input_ids if logits_at is None else input_ids.flatten()[logits_at]
        return F.one_hot((ids * 31 + 7) % self.config.vocab_size, self.config.vocab_size).float()


def tiny_engine(num_seqs: int, graphs: bool, vocab_size: int, stub: bool = False, seed: int = 0) -> LLMEngine:
    "An engine over a random one-layer GPT-2 on the CPU; with `graphs`, decode steps take the runner's padded path as on CUDA."
    torch.manual_seed(seed)
    model = (StubGPT2 if stub else GPT2)(GPT2Config(vocab_size=vocab_size, n_layer=1, n_embd=64, n_head=2)).eval()
    # with `graphs`: the runner's padded decode path, as on CUDA with Triton kernels, without capturing
    return LLMEngine(model, load_tokenizer("gpt2"), EngineConfig(max_num_seqs=num_seqs),
                     runner=functools.partial(GraphModelRunner, decode_mode="padded" if graphs else None))


def add_workload(engine: LLMEngine, num_seqs: int, output_len: int, seed: int = 0) -> None:
    "`ruvon bench throughput`'s shape: prompts of 100-512 random tokens, greedy, `output_len` tokens, end-of-text ignored."
    rng, vocab = random.Random(seed), engine.runner.model_config.vocab_size
    for i in range(num_seqs):
        prompt = [rng.randrange(vocab) for _ in range(rng.randint(100, 512))]
        engine.add_request(str(i), prompt, SamplingParams(temperature=0, max_tokens=output_len, ignore_eos=True))


class ModelTimer:
    "Wall seconds spent inside the model's forward pass (hooks on the top-level module)."
    def __init__(self, model: torch.nn.Module):
        self.total, self._start = 0.0, None
        model.register_forward_pre_hook(lambda *_: setattr(self, "_start", time.perf_counter()))
        model.register_forward_hook(lambda *_: setattr(self, "total", self.total + time.perf_counter() - self._start))


def to_decode_only(engine: LLMEngine, digest) -> int:
    "Step until every request is admitted and prefilled; returns the steps taken."
    n = 0
    while engine.scheduler.waiting or any(s.num_computed < len(s.prompt_ids) for s in engine.scheduler.running):
        feed(digest, engine.step()); n += 1
    return n


def feed(digest, outputs) -> None:
    for rid, d in outputs: digest.update(repr((rid, d.index, d.text, d.token_ids, d.finish_reason)).encode())


def timed_steps(engine: LLMEngine, timer: ModelTimer, num_steps: int, num_seqs: int, digest) -> dict:
    "Mean wall, model and host milliseconds per decode-only step at `num_seqs` running sequences."
    walls, models = [], []
    for _ in range(num_steps):
        assert len(engine.scheduler.running) == num_seqs and not engine.scheduler.waiting
        m0, t0 = timer.total, time.perf_counter()
        outputs = engine.step()
        walls.append(time.perf_counter() - t0); models.append(timer.total - m0)
        feed(digest, outputs)
    wall, model, argmax = 1e3 * sum(walls) / num_steps, 1e3 * sum(models) / num_steps, argmax_ms(engine, num_seqs)
    return {"steps": num_steps, "wall_ms": round(wall, 3), "model_ms": round(model, 3), "argmax_ms": round(argmax, 3),
            "host_ms": round(wall - model - argmax, 3)}


def argmax_ms(engine: LLMEngine, num_seqs: int, repeat: int = 50) -> float:
    "Milliseconds of the step's argmax over (num_seqs, vocab) logits: GPU work on a GPU, so not host overhead."
    logits = torch.randn(num_seqs, engine.runner.model_config.vocab_size)
    t0 = time.perf_counter()
    for _ in range(repeat): logits.argmax(-1).tolist()
    return 1e3 * (time.perf_counter() - t0) / repeat


def profiled_steps(engine: LLMEngine, num_steps: int, digest, top: int) -> list[dict]:
    "cProfile of `num_steps` steps: the `top` functions by own time, in ms per step (model internals included; see cum_ms)."
    prof = cProfile.Profile()
    for _ in range(num_steps):
        prof.enable(); outputs = engine.step(); prof.disable()
        feed(digest, outputs)
    stats = pstats.Stats(prof)
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]
    return [{"function": f"{os.path.basename(f)}:{line}({name})", "calls_per_step": round(nc / num_steps, 1),
             "own_ms": round(1e3 * tt / num_steps, 3), "cum_ms": round(1e3 * ct / num_steps, 3)}
            for (f, line, name), (cc, nc, tt, ct, _) in rows]


def run(graphs: bool, stub: bool, args) -> dict:
    "Admit and prefill the workload, then time and profile decode-only steps; finish the run for the output digest."
    engine, digest = tiny_engine(args.num_seqs, graphs, args.vocab_size, stub), hashlib.sha256()
    timer = ModelTimer(engine.runner.model)
    add_workload(engine, args.num_seqs, args.output_len)
    prefill_steps = to_decode_only(engine, digest)
    timed = timed_steps(engine, timer, args.steps, args.num_seqs, digest)
    profile = profiled_steps(engine, args.profile_steps, digest, args.top) if args.profile_steps else []
    while engine.has_unfinished_requests(): feed(digest, engine.step())
    return {"prefill_steps": prefill_steps, **timed, "output_digest": digest.hexdigest(), "profile": profile}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-seqs", type=int, default=256)
    p.add_argument("--output-len", type=int, default=256)
    p.add_argument("--steps", type=int, default=60, help="timed decode-only steps")
    p.add_argument("--profile-steps", type=int, default=30, help="decode-only steps under cProfile (0: none)")
    p.add_argument("--top", type=int, default=30, help="profile rows kept")
    p.add_argument("--paths", default="graphs,eager", help="decode paths to measure: graphs, eager")
    p.add_argument("--models", default="tiny,stub", help="tiny: the one-layer GPT-2; stub: its forward replaced by a lookup")
    p.add_argument("--vocab-size", type=int, default=4096, help="logits width: the argmax over it is GPU work on a GPU")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadier timings)")
    p.add_argument("--label", default="current", help="key of this run in the JSON file")
    p.add_argument("--json", help="where to store the result (merged with other labels already there)")
    args = p.parse_args()
    assert args.steps + args.profile_steps + 1 < args.output_len, "every measured step must run all sequences"
    torch.set_num_threads(args.threads)
    result = {"command": "python " + " ".join(sys.argv), "cpu": platform.processor() or platform.machine(),
              "torch": torch.__version__, "threads": args.threads, "num_seqs": args.num_seqs, "vocab_size": args.vocab_size}
    for path, model in itertools.product(args.paths.split(","), args.models.split(",")):
        key = f"{path}_{model}"
        result[key] = r = run(path == "graphs", model == "stub", args)
        print(f"{key}: {r['wall_ms']:.2f} ms/step wall, {r['model_ms']:.2f} model, {r['argmax_ms']:.2f} argmax, {r['host_ms']:.2f} host "
              f"({args.num_seqs} seqs, {r['steps']} steps); outputs {r['output_digest'][:16]}", flush=True)
        for row in r["profile"][:15]: print(f"   {row['own_ms']:8.3f} own {row['cum_ms']:8.3f} cum  {row['calls_per_step']:7.1f}x  {row['function']}")
    if args.json:
        stored = json.load(open(args.json)) if os.path.exists(args.json) else {}
        stored[args.label] = result
        with open(args.json, "w") as f: json.dump(stored, f, indent=1)


if __name__ == "__main__":
    main()
