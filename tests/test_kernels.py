"""Part 12's Triton kernels against their torch references over random shapes: on CPU through Triton's
interpreter (CI), and with the compiler in float16/bfloat16 when a CUDA GPU is present."""
import itertools

import pytest
import torch
from hypothesis import given, settings, strategies as st

from ruvon.fused import ROWS_GEMV_LIMIT, layer_norm_kernel, linear_kernel, linear_reference
from ruvon.kernels import paged_decode_attention, paged_decode_reference, write_kv, write_kv_reference

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"  # without a GPU, Triton interprets (CI); with one, the same tests run compiled


def decode_case(batch, n_head, head_dim, block_size, context_lens, dtype, device, seed):
    "A decode batch: strided q, a pool with spare blocks, random disjoint block tables."
    g = torch.Generator().manual_seed(seed)
    max_blocks = max(1, -(-max(context_lens) // block_size))
    num_blocks = batch * max_blocks + 5
    k_cache, v_cache = torch.randn(2, num_blocks, block_size, n_head, head_dim, generator=g).to(device, dtype).unbind(0)
    tables = torch.randperm(num_blocks, generator=g)[: batch * max_blocks].view(batch, max_blocks).int().to(device)
    q = torch.randn(batch, 3, n_head, head_dim, generator=g).to(device, dtype)[:, 1]
    return q, k_cache, v_cache, tables, torch.tensor(context_lens, dtype=torch.int32, device=device)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 4), n_head=st.integers(1, 3), head_dim=st.sampled_from([8, 16, 40, 64]),
       block_size=st.sampled_from([1, 3, 4, 16]), partition_blocks=st.integers(1, 3), block_n=st.sampled_from([4, 8, 16]),
       data=st.data())
def test_paged_decode_matches_reference(batch, n_head, head_dim, block_size, partition_blocks, block_n, data):
    lens = data.draw(st.lists(st.integers(0, 70), min_size=batch, max_size=batch).filter(lambda l: max(l) > 0))
    case = decode_case(batch, n_head, head_dim, block_size, lens, torch.float32, DEVICE, seed=len(lens) + sum(lens))
    out = paged_decode_attention(*case, partition_size=partition_blocks * block_n, block_n=block_n)
    torch.testing.assert_close(out, paged_decode_reference(*case), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("lens", [[1], [16], [17], [1, 1023, 512, 3]])
def test_paged_decode_full_partitions(lens):
    "The default partition and tile sizes, contexts up to GPT-2's 1024 (a partition count fixed for CUDA graphs)."
    case = decode_case(len(lens), 2, 64, 16, lens, torch.float32, DEVICE, seed=1)
    out = paged_decode_attention(*case, max_context_len=1024)
    torch.testing.assert_close(out, paged_decode_reference(*case), atol=1e-5, rtol=1e-5)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 12), n_head=st.integers(1, 4), head_dim=st.sampled_from([8, 64, 80]), data=st.data())
def test_write_kv_matches_reference(n, n_head, head_dim, data):
    num_slots = 4 * 8
    slots = data.draw(st.lists(st.integers(-1, num_slots - 1), min_size=n, max_size=n).filter(
        lambda s: len({x for x in s if x >= 0}) == sum(x >= 0 for x in s)))  # distinct real slots
    qkv = torch.randn(n, 3, n_head, head_dim, device=DEVICE)
    caches = [torch.zeros(8, 4, n_head, head_dim, device=DEVICE) for _ in range(4)]
    write_kv(qkv[:, 1], qkv[:, 2], caches[0], caches[1], torch.tensor(slots, device=DEVICE))
    write_kv_reference(qkv[:, 1], qkv[:, 2], caches[2], caches[3], torch.tensor(slots, device=DEVICE))
    assert torch.equal(caches[0], caches[2]) and torch.equal(caches[1], caches[3])


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("batch, block_size, head_dim, lens", [
    (1, 16, 64, [1]), (3, 16, 64, [5, 1024, 300]), (8, 8, 64, [1, 2, 17, 33, 100, 255, 256, 257]),
    (4, 1, 128, [7, 64, 65, 200]), (2, 5, 80, [49, 0]), (64, 16, 64, list(range(1, 1024, 16))),
])
def test_paged_decode_cuda(dtype, batch, block_size, head_dim, lens):
    case = decode_case(batch, 25, head_dim, block_size, lens, dtype, "cuda", seed=batch)
    ref = paged_decode_reference(*case)
    for max_len in (None, 1024):
        out = paged_decode_attention(*case, max_context_len=max_len)
        torch.testing.assert_close(out.float(), ref.float(), atol=2e-2 if dtype == torch.bfloat16 else 2e-3, rtol=0)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_write_kv_cuda(dtype):
    qkv = torch.randn(300, 3, 25, 64, device="cuda", dtype=dtype)
    slots = torch.randperm(64 * 16, device="cuda")[:300]
    slots[::7] = -1
    caches = [torch.zeros(64, 16, 25, 64, device="cuda", dtype=dtype) for _ in range(4)]
    write_kv(qkv[:, 1], qkv[:, 2], caches[0], caches[1], slots)
    write_kv_reference(qkv[:, 1], qkv[:, 2], caches[2], caches[3], slots)
    assert torch.equal(caches[0], caches[2]) and torch.equal(caches[1], caches[3])


@settings(max_examples=20, deadline=None)
@given(M=st.integers(1, 16), N=st.integers(1, 70), K=st.integers(1, 300), epilogue=st.sampled_from(["none", "bias", "gelu", "residual", "ln"]))
def test_fused_linear_matches_reference(M, N, K, epilogue):
    "Part 12b's small-batch linear kernels, every epilogue and the LayerNorm prologue, sizes that are not multiples of any tile."
    g = torch.Generator().manual_seed(M * 1000 + N * 10 + K)
    x, w, b, r, lw, lb = (torch.randn(*s, generator=g).to(DEVICE) for s in [(M, K), (N, K), (N,), (M, N), (K,), (K,)])
    kw = {"none": {}, "bias": dict(bias=b), "gelu": dict(bias=b, gelu=True), "residual": dict(bias=b, residual=r),
          "ln": dict(bias=b, gelu=True, ln=(lw, lb, 1e-5))}[epilogue]
    torch.testing.assert_close(linear_kernel(x, w, **kw), linear_reference(x, w, **kw), atol=1e-4, rtol=1e-4)


@settings(max_examples=15, deadline=None)
@given(M=st.integers(1, ROWS_GEMV_LIMIT), N=st.integers(1, 70), K=st.integers(1, 300), BLOCK_K=st.sampled_from([16, 64, 256]),
       epilogue=st.sampled_from(["none", "gelu", "residual", "ln"]), row_loop=st.booleans())
def test_rows_gemv_matches_reference(M, N, K, BLOCK_K, epilogue, row_loop):
    "Part 12b's few-row GEMV, both forms (switched off by default, so asked for by its config), its LayerNorm over one chunk of K or several."
    g = torch.Generator().manual_seed(M * 1000 + N * 10 + K)
    x, w, b, r, lw, lb = (torch.randn(*s, generator=g).to(DEVICE) for s in [(M, K), (N, K), (N,), (M, N), (K,), (K,)])
    kw = {"none": {}, "gelu": dict(bias=b, gelu=True), "residual": dict(bias=b, residual=r), "ln": dict(bias=b, residual=r, ln=(lw, lb, 1e-5))}[epilogue]
    y = linear_kernel(x, w, config=dict(kernel="rows", BLOCK_N=16, BLOCK_K=BLOCK_K, ROW_LOOP=row_loop), **kw)
    torch.testing.assert_close(y, linear_reference(x, w, **kw), atol=1e-4, rtol=1e-4)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("M, N, K", [(1, 4800, 1600), (8, 1600, 6400), (16, 2304, 768), (3, 50, 100)])
def test_fused_kernels_cuda(dtype, M, N, K):
    x, w, b = torch.randn(M, K, device="cuda", dtype=dtype), torch.randn(N, K, device="cuda", dtype=dtype) / K**0.5, torch.randn(N, device="cuda", dtype=dtype)
    r = torch.randn(M, N, device="cuda", dtype=dtype)
    tol = dict(atol=3e-2, rtol=2e-2) if dtype == torch.bfloat16 else dict(atol=5e-3, rtol=5e-3)
    lw, lb = torch.randn(K, device="cuda", dtype=dtype), torch.randn(K, device="cuda", dtype=dtype)
    configs = [None, *([dict(kernel="rows", BLOCK_N=16, BLOCK_K=256, num_warps=4, ROW_LOOP=loop) for loop in (False, True)] if M <= ROWS_GEMV_LIMIT else [])]  # the few-row GEMV compiled
    for kw, config in itertools.product([dict(bias=b), dict(bias=b, gelu=True), dict(bias=b, residual=r), dict(bias=b, ln=(lw, lb, 1e-5))], configs):
        as_fp32 = {k: v.float() if torch.is_tensor(v) else tuple(t.float() if torch.is_tensor(t) else t for t in v) if isinstance(v, tuple) else v for k, v in kw.items()}
        torch.testing.assert_close(linear_kernel(x, w, config=config, **kw).float(), linear_reference(x.float(), w.float(), **as_fp32), **tol)
    torch.testing.assert_close(layer_norm_kernel(x, lw, lb, 1e-5).float(), torch.nn.functional.layer_norm(x.float(), (K,), lw.float(), lb.float(), 1e-5), **tol)
