"""Multi-LoRA serving (Part 18) against the base model, same process, same device, with PEFT's unmerged generation as the peer.

The model (default gpt2-xl, dummy fp16 weights) gets `--num-loras` random adapters of rank `--rank` on every projection (B is not
zero, so each update is computed for real). Measured, in one run:

* throughput: `--num-prompts` requests (`--input-len` prompt tokens, `--output-len` output tokens, greedy, ignore_eos) spread
  round-robin over the adapters on Part 18c's `LoRAEngine`, against the same requests on the base engine (Part 13c's
  `GraphModelRunner`; CUDA graphs on a GPU). Also the LoRA engine with every request on the base model (what the slots cost
  unused). Issue #16's target: adapters >= 0.8x the base.
* batch-1 TPOT: one request with an adapter, and without, on the LoRA engine; the base engine for reference. Target <= 1.15x.
* merged: one adapter merged into the weights (Part 18a) on the base engine. Target: the base's speed +-3%.
* batch 1 on the GPU alone (CUDA): the base engine's and the LoRA view's captured one-row decode graphs, replayed back to
  back with an adapter's slot set: the GPU's share of the TPOT difference; the rest of it is host work per step.
* where the time goes: one more throughput run per engine with an observer that records every step, summarised as
  benchmarks/throughput_steps.py does (steps that admit prompts against decode-only steps: count, total, mean), and Python's garbage
  collections during that run (a full collection pauses the process for as long as it takes to walk every live object; after
  the warm-up the benchmark freezes what is alive, as `ruvon serve` does once loaded, so collections skip the engines).
* PEFT: transformers' GPT2LMHeadModel with the same weights and adapters, unmerged (PeftModel): batch-1 TPOT, and a static batch
  of `--peft-batch` prompts with mixed `adapter_names`.

The three engines (base, merged, LoRA) live side by side, each with the same KV pool (enough for every request at once), and
their timed runs are interleaved: round after round (`--runs` rounds), each engine's throughput run, then each one's batch-1
TPOT, so clock and thermal drift fall on all of them alike. Each number is the median of its rounds; `runs` in each entry
lists them all. PEFT runs after the engines are freed, `--runs` times each, and its numbers are medians too.

Memory: the KV pool is sized for every request at once, in each of the three engines. At the defaults (gpt2-xl in float16,
256 sequences of 256 tokens) that is, by arithmetic, 65,536 tokens x 307,200 bytes = 20.1 GB per engine (4,096 blocks of 16
tokens), 60 GB for the three, plus two copies of the 3.1 GB of weights (the LoRA engine shares the base engine's; the merged
engine has its own) and the activations and CUDA graphs: it needs an 80 GB-class GPU. The pool's size is in the JSON
(`kv_cache_memory`, and `kv_blocks` per engine). benchmarks/results/multi_lora_gpu_h100.json was run before this sizing, with
each engine's pool taken from the free memory (14,700 blocks for the base engine): its throughputs are not comparable with a
run of this version.

`--kernels` times, instead, each projection of one block of the model at 1, 4 and 16 rows on the GPU (CUDA graphs, Triton's
`do_bench_cudagraph`, through 12b's benchmark's `time_ms`): Part 12b's `linear_kernel`, Part 18b's `lora_linear` (its `lora_decode_config` tiles) with every row on an
adapter and with none, and its shrink alone, on the input and LayerNorm that `lora_linear` gives it (12b's `linear_plan`: at 4
and 16 rows the LayerNorm runs first, as its own kernel, and the shrink reads its output).
At 64, 256 and 2,048 rows (`many_rows`) it times the base matmul (`F.linear`) and Part 18b's `lora_add` beside it, with its per-row
kernels and grouped by adapter (`lora_add_groups`), rows spread over the adapters in turn; then the base matmul and the grouped update
called eagerly, back to back (`*_eager_us`: where the host's work per call exceeds the GPU's, it shows); at 256 rows also the grouped kernels
with a few other tiles (`grouped_sweep`: fewer splits of K, other expand tile widths).

    python benchmarks/multi_lora.py --json benchmarks/results/multi_lora_gpu.json
    python benchmarks/multi_lora.py --kernels --json benchmarks/results/multi_lora_kernels_gpu.json

`--max-num-batched-tokens` sets every engine's token budget per step (default 2,048, EngineConfig's): with a larger one the prompts are
admitted in fewer, larger eager passes, which pay the host's work per LoRA update fewer times and hide more of it behind GPU work. On an
H100, 4,096 tokens and more took the adapters from 0.70-0.78x the base's throughput to 0.85-0.86x (Part 18c, "A larger step budget";
benchmarks/results/multi_lora_gpu_h100_budget_{4096,8192,8192_peft,16384}.json). A larger budget also raises each engine's activation memory (a pass of that many
tokens) and the LoRA engine's per-token index buffers.

    python benchmarks/multi_lora.py --max-num-batched-tokens 8192 --json benchmarks/results/multi_lora_gpu_budget_8192.json

`--profile-steps N` runs, instead of the timings, the first N steps of the throughput workload on the base and LoRA engines under
torch.profiler: their wall time, the GPU's busy time within it, and the host operations that took the most host time.

    python benchmarks/multi_lora.py --profile-steps 20 --json benchmarks/results/multi_lora_profile_gpu.json

A CPU run with the 2-layer stand-in checks the plumbing:

    python benchmarks/multi_lora.py --model $RUVON_DATA/checkpoints/ruvon-standin-2l --load-format auto --device cpu \\
        --num-prompts 8 --input-len 16 --output-len 8 --peft-batch 4 --json /tmp/multi_lora_cpu.json      # plumbing check
"""
import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from ruvon.bench import result_header
from ruvon.config import EngineConfig
from ruvon.cuda_graphs import GraphModelRunner
from ruvon.engine import LLMEngine, run_to_completion
from ruvon.kv_cache import kv_cache_bytes_per_token
from ruvon.loading import CONV1D_WEIGHTS, load_model, load_tokenizer
from ruvon.lora import TARGET_MODULES, LoRAAdapter, LoRAConfig, merge_lora
from ruvon.multi_lora import MAX_LORA_RANKS, LoRAEngine, MultiLoRAConfig, projection_names
from ruvon.quantization import PROJECTIONS
from ruvon.outputs import SamplingParams
from throughput_steps import StepRecorder, summarize_steps


def sync(device: torch.device) -> None:
    if device.type == "cuda": torch.cuda.synchronize(device)


def random_adapter(model, rank: int, seed: int) -> LoRAAdapter:
    "A rank-`rank` adapter on every projection, with updates about 1% of the weights' scale."
    g = torch.Generator().manual_seed(seed)
    weights = {}
    for name in projection_names(model):
        p = model.get_submodule(name)
        A = torch.randn(rank, p.in_features, generator=g) / p.in_features**0.5
        weights[name] = (A, torch.randn(p.out_features, rank, generator=g) * 0.01)
    return LoRAAdapter(LoRAConfig(rank, rank, TARGET_MODULES, max_lora_rank=rank), weights)


def prompts_for(num: int, input_len: int, vocab: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, vocab, (num, input_len), generator=g).tolist()


def throughput(engine, prompts, output_len: int, lora_names: list | None) -> float:
    "Output tokens/s of all `prompts` at once, greedy, exactly `output_len` tokens each."
    params = SamplingParams(temperature=0, max_tokens=output_len, ignore_eos=True)
    options = None if lora_names is None else [dict(lora_name=n) for n in lora_names]
    sync(engine.runner.device); t0 = time.perf_counter()
    outs = run_to_completion(engine, prompts, [params] * len(prompts), options)
    sync(engine.runner.device)
    return sum(len(o.outputs[0].token_ids) for o in outs) / (time.perf_counter() - t0)


def tpot(engine, prompt: list[int], output_len: int, lora_name: str | None) -> float:
    "Seconds per output token after the first, for one request alone (median of its decode steps)."
    options = {} if lora_name is None else dict(lora_name=lora_name)
    engine.add_request("tpot", prompt, SamplingParams(temperature=0, max_tokens=output_len, ignore_eos=True), **options)
    engine.step()  # the prefill and first token
    steps = []
    while engine.has_unfinished_requests():
        sync(engine.runner.device); t0 = time.perf_counter()
        engine.step()
        sync(engine.runner.device); steps.append(time.perf_counter() - t0)
    return statistics.median(steps)


def median_of(runs: int, fn) -> float:
    return statistics.median(fn() for _ in range(runs))


def interleaved(rounds: int, cases: dict) -> dict:
    "Run every case's timing function once per round, the cases taking turns: {case: [a number per round]}."
    runs = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items(): runs[name].append(fn())
    return runs


def block_projections(model, num_loras: int, rank: int):
    "Each projection of block 0 with random stacked adapters: (label, the projection, new(*shape) for random inputs, A, B)."
    block, g = model.h[0], torch.Generator(device=model.wte.weight.device).manual_seed(0)
    for parent, name in PROJECTIONS:
        p = getattr(getattr(block, parent), name)
        new = lambda *shape, p=p: torch.randn(*shape, generator=g, device=p.weight.device, dtype=p.weight.dtype)
        (N, K) = p.weight.shape
        yield f"{parent}.{name}", p, new, new(num_loras, rank, K) / K**0.5, new(num_loras, N, rank) * 0.01


def kernel_timings(model, num_loras: int, rank: int, rows=(1, 4, 16)) -> list[dict]:
    "Microseconds per call of each projection of block 0: Part 12b's kernel, `lora_linear` with rows on adapters and on none, its shrink."
    from ruvon.fused import linear_kernel, linear_plan
    from ruvon.lora_kernels import lora_decode_config, lora_linear, lora_shrink
    from fused_decode import time_us as us  # Part 12b's benchmark, beside this file: the median of CUDA-graph replays
    block, out = model.h[0], []
    for label, p, new, A, B in block_projections(model, num_loras, rank):
        (N, K), name = p.weight.shape, label.split(".")[1]
        norm = {"c_attn": block.ln_1, "c_fc": block.ln_2}.get(name)  # as Part 12b's FusedBlock calls them
        kw = dict(bias=p.bias, gelu=name == "c_fc", ln=None if norm is None else (norm.weight, norm.bias, norm.eps))
        for M in rows:
            x, res = new(M, K), (new(M, N) if name == "c_proj" else None)
            on, off = (torch.arange(M, device=x.device) % num_loras).int(), torch.full((M,), -1, dtype=torch.int32, device=x.device)
            plan = linear_plan(x, p.weight, p.bias, res, kw["ln"])  # as lora_linear plans it: the shrink's input and LayerNorm
            row = {"projection": label, "rows": M, "K": K, "N": N, "kernel": plan.kernel, "shrink_layer_norm": plan.ln is not None,
                   "base_us": us(lambda: linear_kernel(x, p.weight, residual=res, **kw)),
                   "lora_us": us(lambda: lora_linear(x, p.weight, A, B, on, residual=res, **kw)),
                   "lora_base_rows_us": us(lambda: lora_linear(x, p.weight, A, B, off, residual=res, **kw)),
                   "shrink_us": us(lambda: lora_shrink(plan.x, A, on, lora_decode_config(K, rank), plan.ln))}
            print(row, flush=True)
            out.append(row)
    return out


def eager_us(fn, calls: int = 200) -> float:
    "Microseconds per call of `fn` called back to back without CUDA graphs: the larger of its host work (Python, launches) and its GPU time."
    fn(); torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls): fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / calls * 1e6


def many_rows_timings(model, num_loras: int, rank: int, rows=(64, 256, 2048)) -> list[dict]:
    """Microseconds per call of each projection of block 0 at many rows (rows i on adapter i % num_loras): the base matmul, the update per row,
    the update grouped by adapter (graph replays: GPU time); and the base matmul and the grouped update called eagerly, back to back (host work
    shows where it exceeds the GPU time: an admission step's prompts run eagerly)."""
    from ruvon.lora_kernels import lora_add, lora_add_groups, lora_groups_config, lora_row_groups
    from fused_decode import time_us as us
    out = []
    for label, p, new, A, B in block_projections(model, num_loras, rank):
        (N, K) = p.weight.shape
        for M in rows:
            x, y = new(M, K), new(M, N)
            on = (torch.arange(M, device=x.device) % num_loras).int()
            order, table = (torch.from_numpy(a).to(x.device) for a in lora_row_groups(on.tolist(), num_loras))
            row = {"projection": label, "rows": M, "K": K, "N": N,
                   "base_us": us(lambda: torch.nn.functional.linear(x, p.weight, p.bias)),
                   "per_row_us": us(lambda: lora_add(y, x, A, B, on, use_kernels=True)),
                   "grouped_us": us(lambda: lora_add_groups(y, x, A, B, order, table)),
                   "base_eager_us": eager_us(lambda: torch.nn.functional.linear(x, p.weight, p.bias)),
                   "grouped_eager_us": eager_us(lambda: lora_add_groups(y, x, A, B, order, table))}
            if M == 256:  # a few grouped tiles beside the default: fewer splits (fewer partials per expand program), wider expand tiles
                base_cfg = lora_groups_config(K, rank)
                row["grouped_sweep"] = [{**cfg, "us": us(lambda: lora_add_groups(y, x, A, B, order, table, cfg))}
                                        for cfg in ({**base_cfg, "SPLIT_K": 1}, {**base_cfg, "SPLIT_K": 2},
                                                    {**base_cfg, "BLOCK_N": 64}, {**base_cfg, "BLOCK_N": 256}, {**base_cfg, "SPLIT_K": 2, "BLOCK_N": 64})]
            print(row, flush=True)
            out.append(row)
    return out


def profile_engine(engine, prompts, output_len: int, lora_names, steps: int) -> dict:
    """The first `steps` engine steps of the throughput workload under torch.profiler: their wall time (the profiler's own overhead
    included), the GPU's busy time in them (kernels, copies and fills; well under the wall time: the GPU waited for the host) and the
    host operations that took the most of the host's time."""
    from torch.profiler import ProfilerActivity, profile
    params = SamplingParams(temperature=0, max_tokens=output_len, ignore_eos=True)
    for i, prompt in enumerate(prompts):
        engine.add_request(f"profile-{i}", prompt, params, **({} if lora_names is None or lora_names[i] is None else dict(lora_name=lora_names[i])))
    engine.observer = recorder = StepRecorder()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if engine.runner.device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        sync(engine.runner.device); t0 = time.perf_counter()
        for _ in range(steps): engine.step()
        sync(engine.runner.device); wall = time.perf_counter() - t0
    engine.observer = None
    while engine.has_unfinished_requests(): engine.step()
    events = prof.key_averages()
    device_us = lambda e: getattr(e, "self_device_time_total", 0) or 0
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:15]
    return {"steps": steps, "admission_steps": summarize_steps(recorder.steps)["admission"]["num_steps"], "wall_ms": wall * 1e3,
            "gpu_busy_ms": sum(device_us(e) for e in events) / 1e3,
            "top_host_ops": [{"name": e.key, "calls": e.count, "self_cpu_ms": e.self_cpu_time_total / 1e3} for e in top]}


class GCPauses:
    "Python's garbage collections while it is open: how many of each generation, and how long each full (generation 2) one took."
    def __enter__(self):
        self.counts, self.full_ms, self._t0 = [0, 0, 0], [], 0.0
        gc.callbacks.append(self._note)
        return self

    def _note(self, phase: str, info: dict) -> None:
        if phase == "start": self._t0 = time.perf_counter(); return
        self.counts[info["generation"]] += 1
        if info["generation"] == 2: self.full_ms.append((time.perf_counter() - self._t0) * 1e3)

    def __exit__(self, *exc): gc.callbacks.remove(self._note)

    def summary(self) -> dict: return {"collections_by_generation": self.counts, "full_collection_ms": self.full_ms}


def free(device: torch.device) -> None:
    "Drop what the engines held, so PEFT's model has the memory (unfrozen first: frozen objects are never collected)."
    gc.unfreeze(); gc.collect()
    if device.type == "cuda": torch.cuda.empty_cache()


def hf_model(model, peft_adapters: dict[str, LoRAAdapter] | None):
    "transformers' GPT-2 with `model`'s weights (Conv1D transposed back), wrapped by PEFT with `peft_adapters` unmerged if given."
    from transformers import GPT2Config, GPT2LMHeadModel
    cfg = model.config
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.n_positions, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
                                    n_head=cfg.n_head, n_inner=cfg.n_inner, layer_norm_epsilon=cfg.layer_norm_epsilon))
    state = {f"transformer.{k}": (v.t() if k.endswith(CONV1D_WEIGHTS) else v) for k, v in model.state_dict().items() if k != "lm_head.weight"}
    hf.load_state_dict(state, strict=False)
    hf = hf.to(model.wte.weight.device, model.wte.weight.dtype).eval()
    if not peft_adapters: return hf
    from peft import LoraConfig, get_peft_model
    names = list(peft_adapters)
    rank = next(iter(peft_adapters.values())).config.r
    config = LoraConfig(r=rank, lora_alpha=rank, target_modules=list(TARGET_MODULES), fan_in_fan_out=True, lora_dropout=0.0)
    peft = get_peft_model(hf, config, adapter_name=names[0])
    for name in names[1:]: peft.add_adapter(name, config)
    with torch.no_grad():
        for mod_name, module in peft.named_modules():
            if not hasattr(module, "lora_A"): continue
            ours = mod_name.split("transformer.", 1)[1]
            for name, adapter in peft_adapters.items():
                A, B = adapter.weights[ours]
                module.lora_A[name].weight.copy_(A); module.lora_B[name].weight.copy_(B)
    return peft.eval()


def hf_seconds(m, ids: torch.Tensor, new_tokens: int, **kw) -> float:
    sync(ids.device); t0 = time.perf_counter()
    with torch.no_grad(): m.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0, **kw)
    sync(ids.device)
    return time.perf_counter() - t0


def peft_numbers(model, adapters: dict[str, LoRAAdapter], prompts, output_len: int, batch: int, runs: int) -> dict:
    "PEFT unmerged: batch-1 TPOT ((t(n) - t(1)) / (n - 1)) with an adapter and a mixed static batch's output tokens/s; each t the median of `runs`."
    device = model.wte.weight.device
    peft = hf_model(model, adapters)
    names = list(adapters)
    one = torch.tensor([prompts[0]], device=device)
    hf_seconds(peft, one, 4, adapter_names=names[:1])  # warm-up
    t_n = median_of(runs, lambda: hf_seconds(peft, one, output_len, adapter_names=names[:1]))
    t_1 = median_of(runs, lambda: hf_seconds(peft, one, 1, adapter_names=names[:1]))
    ids = torch.tensor(prompts[:batch], device=device)
    mixed = [names[i % len(names)] for i in range(batch)]
    t_b = median_of(runs, lambda: hf_seconds(peft, ids, output_len, adapter_names=mixed))
    del peft
    return {"tpot_s": (t_n - t_1) / (output_len - 1), "batch": batch, "throughput_tok_s": batch * output_len / t_b}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="gpt2-xl")
    p.add_argument("--load-format", default="dummy")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="float16")
    p.add_argument("--num-loras", type=int, default=8)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--num-prompts", type=int, default=256)
    p.add_argument("--input-len", type=int, default=128)
    p.add_argument("--output-len", type=int, default=128)
    p.add_argument("--max-num-seqs", type=int, default=256)
    p.add_argument("--max-num-batched-tokens", type=int, default=EngineConfig.max_num_batched_tokens,
                   help="every engine's token budget per step: how many prompt tokens one admitting (eager) pass takes at most")
    p.add_argument("--peft-batch", type=int, default=32)
    p.add_argument("--runs", type=int, default=3, help="timed rounds (the engines interleaved within each) and PEFT's repeats; every number is the median of its runs")
    p.add_argument("--skip-peft", action="store_true")
    p.add_argument("--kernels", action="store_true", help="time the projections' kernels (GPU) instead of the engines")
    p.add_argument("--profile-steps", type=int, default=0,
                   help="instead of timing: the first N steps of the throughput workload on the base and LoRA engines under torch.profiler")
    p.add_argument("--json", required=True)
    args = p.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.kernels and device.type != "cuda": p.error("--kernels times GPU kernels: it needs a CUDA device")
    max_model_len = args.input_len + args.output_len
    tok = load_tokenizer(args.model)
    fresh = lambda: load_model(args.model, dtype=args.dtype, device=str(device), load_format=args.load_format, seed=0)
    model = fresh()
    slot_rank = next(r for r in MAX_LORA_RANKS if r >= args.rank)  # the slots' size: the smallest allowed rank that holds the adapters
    result = {**result_header("multi_lora", args.model, args.load_format, model, "python " + " ".join(sys.argv)),
              "num_loras": args.num_loras, "rank": args.rank, "num_prompts": args.num_prompts, "input_len": args.input_len,
              "output_len": args.output_len, "max_num_seqs": args.max_num_seqs,
              "max_num_batched_tokens": args.max_num_batched_tokens, "runs": args.runs}
    if args.kernels:
        result["kernels"] = kernel_timings(model, args.num_loras, slot_rank)
        result["many_rows"] = many_rows_timings(model, args.num_loras, slot_rank)
        return write(args.json, result)
    # every engine the same KV pool, enough for all requests at once, so that the three fit side by side and none preempts
    seq_tokens = -(-max_model_len // EngineConfig.block_size) * EngineConfig.block_size  # whole KV blocks per sequence
    kv = min(args.num_prompts, args.max_num_seqs) * seq_tokens * kv_cache_bytes_per_token(model.config, model.wte.weight.dtype)
    config = EngineConfig(max_num_seqs=args.max_num_seqs, max_model_len=max_model_len, max_num_batched_tokens=args.max_num_batched_tokens,
                          kv_cache_memory=kv)
    result["kv_cache_memory"] = kv
    adapters = {f"lora{i}": random_adapter(model, args.rank, seed=i) for i in range(args.num_loras)}
    prompts = prompts_for(args.num_prompts, args.input_len, model.config.vocab_size)
    names = [f"lora{i % args.num_loras}" for i in range(args.num_prompts)]

    base = LLMEngine(model, tok, config, runner=GraphModelRunner)
    merged = LLMEngine(merge_lora(fresh(), adapters["lora0"]), tok, config, runner=GraphModelRunner)
    lora = LoRAEngine(model, tok, config, lora=MultiLoRAConfig(args.num_loras, slot_rank))  # the base engine's weights, unmerged adapters
    for name, adapter in adapters.items(): lora.add_lora(name, adapter)
    cases = {"base": (base, None, None), "merged": (merged, None, None), "lora": (lora, names, "lora0"),
             "lora_engine_base_requests": (lora, [None] * len(prompts), None)}
    for engine, lora_names, _ in cases.values():  # warm-up: compiles, graphs
        throughput(engine, prompts[:8], 4, None if lora_names is None else lora_names[:8])
    gc.collect(); gc.freeze()  # as `ruvon serve` does once loaded (Part 4c): later full collections skip the engines' objects
    if args.profile_steps:
        for k in ("base", "lora"):
            engine, names_k, _ = cases[k]
            result[f"{k}_profile"] = profile_engine(engine, prompts, args.output_len, names_k, args.profile_steps)
            print(k, "profile", json.dumps(result[f"{k}_profile"]), flush=True)
        return write(args.json, result)
    tput = interleaved(args.runs, {k: (lambda e=e, n=n: throughput(e, prompts, args.output_len, n)) for k, (e, n, _) in cases.items()})
    tpots = interleaved(args.runs, {k: (lambda e=e, o=o: tpot(e, prompts[0], args.output_len, o)) for k, (e, _, o) in cases.items()})
    for k, (engine, _, _) in cases.items():
        result[k] = {"throughput_tok_s": statistics.median(tput[k]), "tpot_s": statistics.median(tpots[k]), "kv_blocks": engine.runner.num_blocks,
                     "runs": {"throughput_tok_s": tput[k], "tpot_s": tpots[k]}}
        print(k, result[k], flush=True)
    write(args.json, result)  # the medians survive a run cut short in what follows
    if device.type == "cuda":  # batch 1 on the GPU alone: the captured one-row decode step replayed, without the host's work per step
        from fused_decode import replay_ms
        tpot(base, prompts[0], 8, None)       # both graphs' row 0 left at the same context length
        tpot(lora, prompts[0], 8, "lora0")    # and the pool's slots as a step with an adapter set them
        result["batch1_replay_ms"] = {"base": replay_ms(base.runner.graphs.graphs[1]), "lora": replay_ms(lora.runner.views[True][1].graphs[1])}
        print("batch1_replay_ms", result["batch1_replay_ms"], flush=True)
    for k, (engine, names_k, _) in cases.items():  # one more throughput run each, step by step: prompt-admitting steps vs decode-only ones
        engine.observer = recorder = StepRecorder()
        with GCPauses() as pauses: throughput(engine, prompts, args.output_len, names_k)  # a long step may be a full collection
        engine.observer = None
        result[k]["steps"], result[k]["gc"] = summarize_steps(recorder.steps), pauses.summary()
        print(k, "steps", json.dumps({kind: result[k]["steps"][kind] for kind in ("admission", "decode_only")}), "gc", result[k]["gc"], flush=True)
    result["pool_bytes"] = lora.runner.lora_slots.nbytes
    write(args.json, result)  # the engines' numbers survive a run cut short during PEFT's
    del base, merged, lora, cases, engine; free(device)  # `engine`: the loops' last binding
    if not args.skip_peft:
        result["peft"] = peft_numbers(fresh(), adapters, prompts, args.output_len, args.peft_batch, args.runs)
        print("peft", result["peft"], flush=True)
    b, l, m = result["base"], result["lora"], result["merged"]
    result["ratios"] = {"lora_throughput_over_base": l["throughput_tok_s"] / b["throughput_tok_s"],
                        "lora_tpot_over_base": l["tpot_s"] / b["tpot_s"],
                        "merged_throughput_over_base": m["throughput_tok_s"] / b["throughput_tok_s"],
                        "merged_tpot_over_base": m["tpot_s"] / b["tpot_s"]}
    if "peft" in result:
        result["ratios"]["peft_tpot_over_lora"] = result["peft"]["tpot_s"] / l["tpot_s"]
    print(json.dumps(result["ratios"], indent=1))
    write(args.json, result)


def write(path: str, result: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
