"""Diagnostic for `ruvon bench throughput`: where a run's time goes, step by step.

Runs the bench's default workload (256 prompts, input 100-512, output 256, ignore_eos) through a warmed-up engine
with an observer that records every step, then splits the run into steps that admit prompts (some span longer than
one token) and decode-only steps, and profiles (torch.profiler, CPU and CUDA) a few admission steps of a second run.

Run on a GPU:  python benchmarks/throughput_steps.py --model gpt2 --load-format dummy --dtype float16 --json out.json
"""
import json
import time

import numpy as np
import torch
from torch.nn.attention import SDPBackend

import ruvon.attention

from common import model_arguments, result_header
from ruvon.bench import ThroughputWorkload, throughput_requests, warm_up
from ruvon.cuda_graphs import GraphModelRunner
from ruvon.engine import EngineConfig, LLMEngine
from ruvon.loading import load_model, load_tokenizer
from ruvon.sampling import SamplingParams


class StepRecorder:
    "An engine observer that keeps every step's stats."
    def __init__(self): self.steps = []
    def on_arrival(self, request_id, num_prompt_tokens, arrival): pass
    def on_step(self, stats): self.steps.append(stats)


def sync():
    if torch.cuda.is_available(): torch.cuda.synchronize()


def add_all(engine, prompts, output_lens):
    for i, (p, n) in enumerate(zip(prompts, output_lens)):
        engine.add_request(str(i), p, SamplingParams(temperature=0, max_tokens=n, ignore_eos=True))


def summarize_steps(steps) -> dict:
    "Count, total and percentiles of step durations, for admission and decode-only steps."
    def stats(sel):
        d = np.array([s.duration for s in sel]) * 1e3
        prefill = [sum(n for _, n in s.num_computed if n > 1) for s in sel]
        return {"num_steps": len(sel), "total_s": float(d.sum() / 1e3) if len(d) else 0.0,
                **({"mean_ms": float(d.mean()), "p50_ms": float(np.median(d)), "max_ms": float(d.max()),
                    "mean_prefill_tokens": float(np.mean(prefill)), "mean_sequences": float(np.mean([len(s.num_computed) for s in sel]))} if len(d) else {})}
    admission = [s for s in steps if any(n > 1 for _, n in s.num_computed)]
    decode = [s for s in steps if s.num_computed and all(n == 1 for _, n in s.num_computed)]
    return {"admission": stats(admission), "decode_only": stats(decode),
            "decode_only_by_batch": {b: stats([s for s in decode if (len(s.num_computed) - 1) // 64 == b]) for b in range(4)}}


def profile_admission_steps(engine, prompts, output_lens, skip: int = 10, steps: int = 3) -> str:
    from torch.profiler import ProfilerActivity, profile
    add_all(engine, prompts, output_lens)
    for _ in range(skip): engine.step()
    sync()
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])) as prof:
        for _ in range(steps): engine.step()
        sync()
    avg = prof.key_averages()
    return avg.table(sort_by="cpu_time_total", row_limit=25) + "\n" + (avg.table(sort_by="cuda_time_total", row_limit=15) if torch.cuda.is_available() else "")


def main():
    p = model_arguments(__doc__.splitlines()[0])
    p.add_argument("--num-prompts", type=int, default=256)
    p.add_argument("--output-len", type=int, default=256)
    p.add_argument("--sdpa-default", action="store_true", help="let PyTorch choose SDPA's kernels, cuDNN included (Part 9 pins them)")
    p.add_argument("--no-profile", action="store_true")
    args = p.parse_args()
    if args.sdpa_default: ruvon.attention.SDPA_KERNELS = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    model = load_model(args.model, dtype=args.dtype, device=args.device, load_format=args.load_format)
    tok = load_tokenizer(args.model)
    prompts, output_lens = throughput_requests(ThroughputWorkload(args.num_prompts, output_len=(args.output_len, args.output_len)), model.config.vocab_size, tok.eos_token_id)
    recorder = StepRecorder()
    engine = LLMEngine(model, tok, EngineConfig(), observer=recorder, runner=GraphModelRunner)
    warm_up(engine); recorder.steps.clear()
    add_all(engine, prompts, output_lens)
    sync(); t0 = time.perf_counter()
    while engine.has_unfinished_requests(): engine.step()
    sync()
    result = {**result_header("throughput_steps", args, model), "sdpa_kernels": [b.name for b in ruvon.attention.SDPA_KERNELS],
              "elapsed_s": time.perf_counter() - t0, **summarize_steps(recorder.steps)}
    print(json.dumps(result, indent=1), flush=True)
    if not args.no_profile:
        engine.observer = None
        result["profile"] = profile_admission_steps(engine, prompts, output_lens)
        print(result["profile"], flush=True)
    with open(args.json, "w") as f: json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
