__version__ = "0.1.0"

# The public entry points, imported on first use (PEP 562): `import ruvon.tokenizer` or `import ruvon.loadtest`
# must not pay for torch, Triton and the engine, and `ruvon --help` must not either. `from ruvon import LLM` works
# as before. (Triton's interpret mode on machines without CUDA is decided in ruvon/kernels.py, Part 12.)
_LAZY = {"LLM": "llm", "SamplingParams": "outputs", "LoRARequest": "multi_lora", "load_model": "loading", "load_tokenizer": "loading"}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY: raise AttributeError(f"module 'ruvon' has no attribute {name!r}")
    from importlib import import_module
    value = getattr(import_module(f"ruvon.{_LAZY[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]: return sorted({*globals(), *_LAZY})
