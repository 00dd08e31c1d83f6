"""End-to-end checks that need a CUDA GPU (skipped elsewhere): the engine with Part 12's Triton kernels
and Part 13c's CUDA graphs against the CPU float32 reference path, and graphs against eager."""
import json
import os

import pytest
import torch

from ruvon.llm import LLM
from ruvon.sampling import SamplingParams

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

PROMPTS = ["ROMEO:", "First Citizen:\nBefore we proceed any further, hear me speak.", "The meaning of life is",
           "def fibonacci(n):", "In 1905, Albert Einstein published", "KING RICHARD III:\nNow is the winter"]
GREEDY_32 = SamplingParams(temperature=0, max_tokens=32, ignore_eos=True)


def first_divergence(a: list[int], b: list[int]) -> int | None:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)


def margin_at(llm: LLM, prompt_ids: list[int], output_ids: list[int], position: int) -> float:
    "fp32 gap between the two likeliest next tokens after prompt + output[:position] (a near-tie flips under fp16)."
    ids = torch.tensor([prompt_ids + output_ids[:position]])
    with torch.no_grad(): top2 = llm.model(ids, last_only=True)[0, -1].float().topk(2).values
    return float(top2[0] - top2[1])


@pytest.mark.parametrize("checkpoint", ["standin_6l", "standin_2l"])
def test_gpu_fp16_triton_graphs_match_cpu_fp32_reference(request, checkpoint):
    path = request.getfixturevalue(checkpoint)
    if not path.is_dir(): pytest.skip(f"{path} not on this machine")
    path = str(path)
    gpu = LLM(path, device="cuda", dtype="float16", kv_cache_memory=1 << 30, max_num_seqs=8)
    cpu = LLM(path, device="cpu", dtype="float32", attention_backend="eager", max_num_seqs=8)
    runner = gpu.engine.runner
    assert runner.graphs is not None and runner.kernels.decode.__name__ == "paged_decode_attention"
    assert type(runner.model.h[0]).__name__ == "FusedBlock"  # Part 12b's kernels for decode batches up to 16
    assert type(gpu.model.h[0]).__name__ == "Block"  # a view: the loaded model is not changed
    report = []
    for prompt, g, c in zip(PROMPTS, gpu.generate(PROMPTS, GREEDY_32), cpu.generate(PROMPTS, GREEDY_32)):
        at = first_divergence(g.outputs[0].token_ids, c.outputs[0].token_ids)
        margin = None if at is None else margin_at(cpu, c.prompt_token_ids, c.outputs[0].token_ids, at)
        report.append({"prompt": prompt, "identical": at is None, "first_divergence": at, "fp32_margin_there": margin})
    if os.environ.get("RUVON_GPU_REPORT"):
        with open(os.environ["RUVON_GPU_REPORT"] + f".{checkpoint}.json", "w") as f: json.dump(report, f, indent=1)
    # identical, or the first difference is at an fp32 near-tie (gap below 0.05 logits) that fp16 rounding can flip
    assert all(r["identical"] or r["fp32_margin_there"] < 0.05 for r in report), report
    assert sum(r["identical"] for r in report) >= len(report) - 1, report


def test_cuda_graphs_give_the_eager_tokens():
    "40 prompts through 16 slots with staggered lengths: admissions mix prefills into decode steps (graph + eager split)."
    prompts = [[(7 * i + j) % 50000 for j in range(5 + 9 * (i % 13))] for i in range(40)]
    params = [SamplingParams(temperature=0, max_tokens=8 + (5 * i) % 37, ignore_eos=True) for i in range(40)]
    graphed = LLM("gpt2", load_format="dummy", dtype="float16", max_num_seqs=16, kv_cache_memory=1 << 30)
    eager = LLM("gpt2", load_format="dummy", dtype="float16", max_num_seqs=16, kv_cache_memory=1 << 30, enforce_eager=True)
    eager.model.load_state_dict(graphed.model.state_dict())
    assert graphed.engine.runner.graphs.buckets == [1, 2, 4, 8, 16] and not eager.engine.runner.graphs.capture
    a = [o.outputs[0].token_ids for o in graphed.generate(prompts, params)]
    b = [o.outputs[0].token_ids for o in eager.generate(prompts, params)]
    assert [len(x) for x in a] == [p.max_tokens for p in params]
    assert a == b
    assert graphed.engine.bm.num_free_blocks == graphed.engine.bm.num_blocks


def test_attention_backends_agree_on_gpu():
    "Every backend the GPU offers gives the same greedy tokens as eager attention with the torch reference kernels."
    prompts = [[(11 * i + j) % 50000 for j in range(3 + 17 * i)] for i in range(6)]
    params = SamplingParams(temperature=0, max_tokens=16, ignore_eos=True)
    base = LLM("gpt2", load_format="dummy", dtype="float32", max_num_seqs=8, kv_cache_memory=1 << 30, attention_backend="eager")
    want = [o.outputs[0].token_ids for o in base.generate(prompts, params)]
    for backend in ("sdpa", "triton", "auto"):
        llm = LLM("gpt2", load_format="dummy", dtype="float32", max_num_seqs=8, kv_cache_memory=1 << 30, attention_backend=backend)
        llm.model.load_state_dict(base.model.state_dict())
        assert [o.outputs[0].token_ids for o in llm.generate(prompts, params)] == want, backend


def test_varlen_prefill_matches_the_per_prompt_loop():
    "A step admitting fresh prompts of different lengths after a continuing one: Part 9's variable-length call gives the per-prompt logits."
    from ruvon.attention import use_attention_backend
    from ruvon.block_manager import BlockManager
    from ruvon.loading import load_model
    from ruvon.paged_cache import TRITON_KERNELS, PagedKVCache, PagedStep, forward_step
    model = load_model("gpt2", load_format="dummy", dtype="float16", device="cuda")
    use_attention_backend(model, "sdpa")
    bm, cache = BlockManager(256, 16), PagedKVCache(model.config, 256, 16, torch.float16, "cuda")
    g = torch.Generator().manual_seed(0)
    ids = [torch.randint(0, 50000, (n,), generator=g).tolist() for n in (37, 5, 120, 64)]
    bm.allocate(0, 20)
    forward_step(model, PagedStep.build(cache, bm, [(0, 0, 20)], TRITON_KERNELS), torch.tensor(ids[0][:20], device="cuda"))
    bm.append(0, 17)
    for i in (1, 2, 3): bm.allocate(i, len(ids[i]))
    step = PagedStep.build(cache, bm, [(0, 20, 37), (1, 0, 5), (2, 0, 120), (3, 0, 64)], TRITON_KERNELS)
    assert step.fresh is not None and step.fresh[:2] == (17, 189)
    tokens = torch.tensor(ids[0][20:] + ids[1] + ids[2] + ids[3], device="cuda")
    with_varlen = forward_step(model, step, tokens)
    step.fresh = None  # the same step through one attention call per prompt
    torch.testing.assert_close(with_varlen, forward_step(model, step, tokens), atol=2e-2, rtol=0)


def test_lora_on_gpu_graphs_mixed_batch_and_kernels(standin_6l):
    "Part 18 on the GPU: 18b's kernels equal the PyTorch path; with CUDA graphs (buckets of 16 rows and fewer, and 32: the grouped kernels) a mixed batch gives each request its tokens alone."
    from pathlib import Path
    from ruvon.multi_lora import LoRARequest
    adapters = Path(__file__).resolve().parents[1] / "adapters"
    llm = LLM(str(standin_6l), device="cuda", dtype="float32", kv_cache_memory=1 << 30, max_num_seqs=32, enable_lora=True, max_loras=2)
    runner = llm.engine.runner
    assert runner.graphs is not None and type(runner.model.h[0]).__name__ == "FusedBlock"
    plain, plain_graphs = runner.views[False]  # steps without adapters (request 0 alone): the plain fused model, graphs of its own
    assert plain_graphs is not None and plain_graphs is not runner.views[True][1] and type(plain.h[0].attn.c_attn).__name__ != "LoRALinear"
    loras = [None, LoRARequest("business", 1, str(adapters / "business")), LoRARequest("poetry", 2, str(adapters / "poetry"))]
    requests = [(PROMPTS[i % 4], loras[i % 3]) for i in range(24)]  # request 4 is request 0's prompt with business; 24 rows: bucket 32
    alone = [llm.generate([p], GREEDY_32, lora_request=r)[0].outputs[0].token_ids for p, r in requests]
    mixed = [o.outputs[0].token_ids for o in llm.generate([p for p, _ in requests], GREEDY_32, lora_request=[r for _, r in requests])]
    assert mixed == alone
    assert alone[0] != alone[4]  # the adapter changes the text, so a mix-up would show
    slots = runner.lora_slots  # the kernels against the PyTorch grouped path on one projection, real adapter weights
    x = torch.randn(64, slots.A["h.0.mlp.c_fc"].shape[2], device="cuda")
    idx = torch.tensor([(-1, 0, 1)[i % 3] for i in range(64)], dtype=torch.int32, device="cuda")
    y = torch.randn(64, slots.B["h.0.mlp.c_fc"].shape[1], device="cuda")
    from ruvon.lora_kernels import lora_add
    for gelu in (False, True):
        got = lora_add(y.clone(), x, slots.A["h.0.mlp.c_fc"], slots.B["h.0.mlp.c_fc"], idx, gelu, use_kernels=True)
        want = lora_add(y.clone(), x, slots.A["h.0.mlp.c_fc"], slots.B["h.0.mlp.c_fc"], idx, gelu, use_kernels=False)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    slots.set_token_slots(idx.tolist())  # the grouped kernels, with the pool's groups
    got = lora_add(y.clone(), x, slots.A["h.0.mlp.c_fc"], slots.B["h.0.mlp.c_fc"], idx, groups=slots.groups_for(64))
    torch.testing.assert_close(got, lora_add(y.clone(), x, slots.A["h.0.mlp.c_fc"], slots.B["h.0.mlp.c_fc"], idx, use_kernels=False), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32], ids=str)  # ids torch.float16, ...: -k float16 selects
def test_lora_linear_kernels_on_gpu(dtype):
    "Part 18b's few-row path compiled: shrink + 12b's loop with the update before the epilogue, against torch; rows without an adapter = 12b's bits."
    import torch.nn.functional as F
    from ruvon.fused import linear_kernel
    from ruvon.lora_kernels import lora_add, lora_delta_reference, lora_linear
    g = torch.Generator(device="cuda").manual_seed(0)
    new = lambda *shape: torch.randn(*shape, generator=g, device="cuda").to(dtype)
    tol = dict(rtol=1e-3, atol=1e-3) if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)
    for K, N, R in [(1600, 6400, 16), (6400, 1600, 16), (1600, 4800, 64), (70, 37, 8)]:  # GPT-2 XL's shapes, and ragged ones
        w, b, A, B = new(N, K) / K**0.5, new(N), new(8, R, K) / K**0.5, new(8, N, R) * 0.1
        ln = (new(K).abs() + 0.5, new(K), 1e-5)
        rows = lambda loop: dict(kernel="rows", BLOCK_N=16, BLOCK_K=128, num_warps=4, num_stages=1, ROW_LOOP=loop)
        for M, config, pattern in [(1, None, (0,)), (1, None, (-1,)), (5, None, (0, -1, 7, 3)), (16, None, (0, -1, 7, 3)),
                                   (3, rows(False), (0, -1, 7)), (3, rows(True), (0, -1, 7))]:
            x, res = new(M, K) * 2 + 1, new(M, N)
            slots = torch.tensor([pattern[i % len(pattern)] for i in range(M)], dtype=torch.int32, device="cuda")
            for kw in [dict(ln=ln, gelu=True), dict(ln=ln), dict(residual=res), dict()]:
                xn = F.layer_norm(x.double(), (K,), ln[0].double(), ln[1].double(), ln[2]) if "ln" in kw else x.double()
                want = xn @ w.double().t() + b.double() + lora_delta_reference(xn.float(), A, B, slots).double()
                if kw.get("gelu"): want = F.gelu(want, approximate="tanh")
                if "residual" in kw: want = want + res.double()
                got = lora_linear(x, w, A, B, slots, bias=b, config=config, **kw)
                torch.testing.assert_close(got.double(), want, **tol)
                base = linear_kernel(x, w, bias=b, config=config, **kw)
                off = slots < 0
                assert bool(off.any()) == (-1 in pattern)  # each case with a base row really compares one
                assert torch.equal(got[off], base[off]), (K, N, M, kw)  # no adapter: Part 12b's kernel, bit for bit
        x, y = new(5, K) * 2 + 1, new(5, N)  # the two-kernel path with a LayerNorm (a quantized base's), against PyTorch's
        idx = torch.tensor([0, -1, 7, 3, 0], dtype=torch.int32, device="cuda")
        got = lora_add(y.clone(), x, A, B, idx, True, use_kernels=True, norm=ln)
        want = lora_add(y.clone(), x, A, B, idx, True, use_kernels=False, norm=ln)
        torch.testing.assert_close(got, want, **tol)


@pytest.mark.parametrize("method", ["int8", "int4-g128", "int4-g32"])
def test_quantized_projection_kernels_at_every_row_count(method):
    "Parts 17b/17c compiled: a quantized projection's call (17b's kernels up to 16 rows, the rebuilt weight past them) and 17b's tiled kernels at many rows equal F.linear on the rebuilt weight; the one-kernel rebuilds give 17a's bits."
    from torch import nn
    from ruvon.quant_kernels import QUANT_GEMM_MAX_ROWS, int4_dequantize, int8_dequantize
    from ruvon.quantization import dequantize_int4, dequantize_int8
    from ruvon.quantized import Int4Linear, Int8Linear
    torch.manual_seed(0)
    for K, N in [(1600, 4800), (1000, 600)]:  # GPT-2 XL's QKV; and sizes that are no multiple of the 64-wide tiles
        lin = nn.Linear(K, N, device="cuda", dtype=torch.float16)
        q = Int8Linear.from_linear(lin) if method == "int8" else Int4Linear.from_linear(lin, int(method.split("-g")[1]))
        w = q.dequantized().float()
        for dtype in (torch.float16, torch.bfloat16):  # on the GPU, 17b's one-kernel rebuilds: 17a's bits
            if method == "int8":
                s = q.scale.to(dtype)
                assert torch.equal(int8_dequantize(q.qweight, s), dequantize_int8(q.qweight, s)), dtype
            else:
                s = q.scales.to(dtype)
                assert torch.equal(int4_dequantize(q.qweight, s, q.zeros, q.group_size), dequantize_int4(q.qweight, s, q.zeros, q.group_size)), dtype
        for M in (1, 5, QUANT_GEMM_MAX_ROWS, QUANT_GEMM_MAX_ROWS + 1, 100, 600):
            x = torch.randn(M, K, device="cuda", dtype=torch.float16)
            want = torch.nn.functional.linear(x.float(), w, q.bias.float())
            torch.testing.assert_close(q(x).float(), want, atol=2e-2, rtol=2e-2)
            torch.testing.assert_close(q.fused(x).float(), want, atol=2e-2, rtol=2e-2)  # the kernels at every row count, tiled past 16


def test_max_gpu_memory_caps_the_allocator_on_an_unnumbered_device():
    "Part 8's cap on `torch.device('cuda')` (no index, as `--device cuda` gives): a 2 GiB tensor under a 1 GiB cap runs out of memory."
    from ruvon.model_runner import cap_gpu_memory
    torch.cuda.empty_cache()
    cap_gpu_memory(1 << 30, torch.device("cuda"), 0, "nothing")
    try:
        with pytest.raises(torch.cuda.OutOfMemoryError): torch.empty(2 << 30, dtype=torch.uint8, device="cuda")
        torch.empty(256 << 20, dtype=torch.uint8, device="cuda")  # under the cap: allowed
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0); torch.cuda.empty_cache()


def test_bitsandbytes_int8_decodes_without_cuda_graphs():
    "LLM.int8() finds outliers in each pass's data, so graphs can't capture it (Part 17c): the runner warns, decodes padded, and serves."
    pytest.importorskip("bitsandbytes")
    prompts = [[(11 * i + j) % 50000 for j in range(4 + 3 * i)] for i in range(6)]
    with pytest.warns(UserWarning, match="CUDA graphs can't capture"):
        llm = LLM("gpt2", load_format="dummy", dtype="float16", quantization="bitsandbytes-int8", max_num_seqs=8, kv_cache_memory=1 << 30)
    assert llm.engine.runner.decode_mode == "padded" and not llm.engine.runner.graphs.capture
    out = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=12, ignore_eos=True))
    assert [len(o.outputs[0].token_ids) for o in out] == [12] * len(prompts)
    nf4 = LLM("gpt2", load_format="dummy", dtype="float16", quantization="bitsandbytes-nf4", max_num_seqs=8, kv_cache_memory=1 << 30)
    assert nf4.engine.runner.decode_mode == "graphs"  # NF4 has no data-dependent split: captured


@pytest.mark.parametrize("method", ["int8", "int4"])
def test_quantized_dummy_load_is_the_float_dummy_model_quantized(method):
    "Part 17c has the GPU draw a quantized dummy model's numbers (Part 1c's `draw_on`): the float16 dummy model of the GPU, quantized, bit for bit."
    from ruvon.loading import load_model
    from ruvon.quantization import QuantizationConfig
    from ruvon.quantized import load_quantized, quantize_model
    config = QuantizationConfig(method)
    loaded = load_quantized("gpt2", config, dtype="float16", device="cuda", load_format="dummy").state_dict()
    reference = quantize_model(load_model("gpt2", dtype="float16", device="cuda", load_format="dummy"), config, "cuda").state_dict()
    assert list(loaded) == list(reference)
    for name, tensor in loaded.items(): assert tensor.device.type == "cuda" and torch.equal(tensor, reference[name]), name
