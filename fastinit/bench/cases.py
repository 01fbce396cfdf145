"""What the side-by-side benchmark measures: the cases, and each implementation of them.

An implementation is a factory ``make(case, out, ctx) -> Runner`` (or a str:
why it is skipped), where ``out`` is the output array of the case and
``ctx`` holds the thread count and the BLAS thread control. Peers (NumPy,
PyTorch, JAX, SciPy, Keras) are imported only when installed and only when
their rows run.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from .._threads import set_num_threads

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

    import numpy.typing as npt

    #: What a factory gets besides the case and its output: "threads", "blas" (the BLAS
    #: thread control), "size".
    Context = dict[str, Any]
    #: An implementation: ``make(case, out, ctx)``, a Runner or why the row is skipped.
    Factory = Callable[[str, npt.NDArray[Any], Context], Union["Runner", str]]

__all__ = ["CASES", "ALL_CASES", "FLAT_CASES", "NUMPY_REFERENCE", "SEED", "TRUNCATION",
           "DEFAULT_BUDGET",
           "Runner", "case_shape", "implementations", "numpy_truncated_normal",
           "numpy_orthogonal", "model_config"]

CASES = ("normal", "uniform", "truncated_normal", "variance_scaling", "orthogonal")
#: Cases run only when asked for: ``--cases model`` (transformers) and ``--cases jax``
#: (fastinit.jax on XLA against jax.random, under jit).
JAX_CASES = ("jax_normal", "jax_truncated_normal")
ALL_CASES = CASES + ("model",) + JAX_CASES
FLAT_CASES = ("normal", "uniform", "truncated_normal") + JAX_CASES  # --size elements, flat
TRUNCATION = 2.0  # truncated normal on [-TRUNCATION, TRUNCATION] std, as torch's default
SEED = 0
DEFAULT_SIZE = 10**8   # fastinit demo (the README's first command)
BENCH_SIZE = 10**7  # fastinit bench: under a minute on 2 cores with the peers installed
QUICK_SIZE = 10**6
DEFAULT_REPEAT = 3
#: Seconds of timed calls after which an implementation is not repeated further (its
#: first timed call always runs): the slow peers' rows take one or two calls.
DEFAULT_BUDGET = 2.0
KERNEL_COLUMNS = 4096   # the variance-scaling kernel is (n // KERNEL_COLUMNS, KERNEL_COLUMNS)
DEFAULT_ORTHO_SIZE = 2048
QUICK_ORTHO_SIZE = 256
DTYPES = ("float32", "float64", "float16", "bfloat16")

NUMPY_REFERENCE = {"normal": "numpy Generator", "uniform": "numpy Generator",
                    "truncated_normal": "numpy rejection",
                    "variance_scaling": "numpy Generator", "orthogonal": "numpy.linalg.qr",
                    "model": "transformers", "jax_normal": "jax.random",
                    "jax_truncated_normal": "jax.random"}


@dataclass
class Runner:
    """One implementation of one case, ready to run."""

    call: Callable[[], Any]          # the timed call
    allocates_output: bool = False   # the call returns a new output of n elements
    finish: Callable[[Any], Any] | None = None   # called with the call's result
                                                 # (e.g. block_until_ready)
    note: str = ""
    #: The first call compiles (fastinit's Numba kernels, a model's lazy set-up): it is a
    #: warm-up, never timed. Other rows are timed from their first call (their buffers are
    #: touched and JAX's functions compiled beforehand), which keeps the slowest peers to
    #: one call.
    compiles: bool = False


def _threads(ctx: Context) -> str:
    return "1 thread" if ctx["threads"] == 1 else f"{ctx['threads']} threads"


def _fastinit(backend: str) -> Factory:
    def make(case: str, out: npt.NDArray[Any], ctx: Context) -> Runner | str:
        from .. import random as fr
        set_num_threads(ctx["threads"])
        if case == "normal":
            def call() -> Any:
                return fr.normal(out=out, seed=SEED, backend=backend)
        elif case == "uniform":
            def call() -> Any:
                return fr.uniform(out=out, seed=SEED, backend=backend)
        else:
            def call() -> Any:
                return fr.truncated_normal(out=out, a=-TRUNCATION, b=TRUNCATION, seed=SEED,
                                           backend=backend)
        note = f"{_threads(ctx)}" if backend == "numba" else "single-threaded"
        return Runner(call, note=note, compiles=True)
    return make


def _numpy_generator(case: str, out: npt.NDArray[Any], ctx: Context) -> Runner | str:
    if out.dtype not in (np.float32, np.float64):
        return f"no {out.dtype.name} in numpy.random.Generator"
    gen = np.random.Generator(np.random.PCG64(SEED))
    if case == "normal":
        def call() -> Any:
            return gen.standard_normal(out.size, dtype=out.dtype, out=out)
    else:
        def call() -> Any:
            return gen.random(out.size, dtype=out.dtype, out=out)
    return Runner(call, note="single-threaded")


def numpy_truncated_normal(gen: np.random.Generator, out: npt.NDArray[np.floating[Any]],
                           a: float = -TRUNCATION,
                           b: float = TRUNCATION) -> npt.NDArray[np.floating[Any]]:
    """Standard normal conditioned on ``[a, b]`` into ``out`` by vectorised rejection.

    Draws everything, then redraws the elements outside ``[a, b]`` until none
    is left: what a NumPy user writes. Needs a boolean mask and an index
    array besides ``out``.
    """
    gen.standard_normal(out.size, dtype=out.dtype, out=out)
    mask = out < a
    mask |= out > b
    redo = np.flatnonzero(mask)
    del mask
    while redo.size:
        draw = gen.standard_normal(redo.size, dtype=out.dtype)
        out[redo] = draw
        redo = redo[(draw < a) | (draw > b)]
    return out


def _numpy_rejection(case: str, out: npt.NDArray[Any], ctx: Context) -> Runner | str:
    if out.dtype not in (np.float32, np.float64):
        return f"no {out.dtype.name} in numpy.random.Generator"
    gen = np.random.Generator(np.random.PCG64(SEED))
    return Runner(lambda: numpy_truncated_normal(gen, out), note="single-threaded")


def _torch(case: str, out: npt.NDArray[Any], ctx: Context) -> Runner | str:
    import torch
    torch.set_num_threads(ctx["threads"])
    torch.manual_seed(SEED)
    t = torch.zeros(out.size, dtype=getattr(torch, out.dtype.name))   # resident before timing
    call: Callable[[], Any]
    if case == "normal":
        call, name = t.normal_, "Tensor.normal_"
    elif case == "uniform":
        call, name = t.uniform_, "Tensor.uniform_"
    else:
        def trunc_normal() -> Any:
            return torch.nn.init.trunc_normal_(t, mean=0.0, std=1.0, a=-TRUNCATION,
                                               b=TRUNCATION)
        call, name = trunc_normal, "nn.init.trunc_normal_"
    return Runner(call, note=f"{name}, {_threads(ctx)}")


def _jax(case: str, out: npt.NDArray[Any], ctx: Context) -> Runner | str:
    import jax
    import jax.numpy as jnp
    # getattr: JAX's typed Config does not declare its flags
    if out.dtype == np.float64 and not getattr(jax.config, "jax_enable_x64"):  # noqa: B009
        return "float64 needs jax_enable_x64"
    dtype = getattr(jnp, out.dtype.name)
    shape = (out.size,)
    if case == "normal":
        fn = jax.jit(lambda k: jax.random.normal(k, shape, dtype))
    elif case == "uniform":
        fn = jax.jit(lambda k: jax.random.uniform(k, shape, dtype))
    else:
        fn = jax.jit(lambda k: jax.random.truncated_normal(k, -TRUNCATION, TRUNCATION, shape,
                                                          dtype))
    return _jax_runner(fn, note="jit, XLA's own threads")


def _jax_runner(fn: Any, note: str) -> Runner:
    """A JAX row: ``fn`` compiled ahead of time (jit's trace and XLA's compile, without a
    run), so that its first call is already a timed one."""
    import jax
    key = jax.random.PRNGKey(SEED)
    compiled = fn.lower(key).compile()
    return Runner(lambda: compiled(key), allocates_output=True,
                  finish=lambda r: r.block_until_ready(), note=note)


# -- variance scaling: a Glorot-uniform kernel ---------------------------------------


def case_shape(case: str, size: int, ortho_size: int = DEFAULT_ORTHO_SIZE) -> tuple[int, ...]:
    """The output shape of ``case``: ``(size,)``; ``(size // 4096, 4096)`` for the Glorot
    kernel (``(1, size)`` below 4096 elements); ``(ortho_size, ortho_size)`` for the
    orthogonal matrix."""
    if case == "variance_scaling":
        cols = min(KERNEL_COLUMNS, size)
        return (size // cols, cols)
    if case == "orthogonal":
        return (ortho_size, ortho_size)
    if case == "model":
        return (_llama_parameters(model_config(size)),)
    return (size,)


def _glorot_limit(shape: tuple[int, ...]) -> float:
    """``sqrt(6 / (fan_in + fan_out))`` of a 2-D kernel (the same in either layout)."""
    return math.sqrt(6.0 / (shape[0] + shape[1]))


def _fastinit_glorot(backend: str) -> Factory:
    def make(case: str, out: npt.NDArray[Any], ctx: Context) -> Runner | str:
        from ..initializers import GlorotUniform
        set_num_threads(ctx["threads"])
        init = GlorotUniform(seed=SEED)
        note = f"{_threads(ctx)}" if backend == "numba" else "single-threaded"
        return Runner(lambda: init(out.shape, out=out, backend=backend),
                      note=f"initializers.GlorotUniform, {note}", compiles=True)
    return make


def _numpy_glorot(case: str, out: npt.NDArray[Any], ctx: Context) -> Runner | str:
    if out.dtype not in (np.float32, np.float64):
        return f"no {out.dtype.name} in numpy.random.Generator"
    gen = np.random.Generator(np.random.PCG64(SEED))
    limit = _glorot_limit(out.shape)

    def call() -> Any:
        # Generator.uniform has neither out= nor dtype=: random() into the output, then
        # low + (high - low) * u in place (Generator.uniform's formula).
        gen.random(dtype=out.dtype, out=out)
        np.multiply(out, 2.0 * limit, out=out)
        np.subtract(out, limit, out=out)
        return out
    return Runner(call, note="random(out=) * 2 limit - limit, single-threaded")


def _torch_glorot(case: str, out: npt.NDArray[Any], ctx: Context) -> Runner | str:
    import torch
    torch.set_num_threads(ctx["threads"])
    torch.manual_seed(SEED)
    # torch's (out, in) layout: the transposed shape has the same fans (and Glorot's
    # bound is symmetric in them anyway).
    t = torch.zeros(out.shape[::-1], dtype=getattr(torch, out.dtype.name))
    return Runner(lambda: torch.nn.init.xavier_uniform_(t),
                  note=f"nn.init.xavier_uniform_, {_threads(ctx)}")


def _jax_initializer(name: str) -> Factory:
    """A JAX row: ``jax.nn.initializers.<name>()`` under ``jit``."""
    def make(case: str, out: npt.NDArray[Any], ctx: Context) -> Runner | str:
        import jax
        import jax.numpy as jnp
        if out.dtype == np.float64 and not getattr(jax.config, "jax_enable_x64"):  # noqa: B009
            return "float64 needs jax_enable_x64"
        dtype, shape = getattr(jnp, out.dtype.name), out.shape
        init = getattr(jax.nn.initializers, name)()
        fn = jax.jit(lambda k: init(k, shape, dtype))
        return _jax_runner(fn, note=f"nn.initializers.{name}, jit, XLA's own threads")
    return make


def _import_keras_numpy() -> ModuleType | str:
    """Keras 3 on its NumPy backend, or a reason to skip (a str).

    ``KERAS_BACKEND=numpy`` is set only for the import (Keras reads it then) and only
    when Keras is not imported yet; a Keras already running another backend is left alone.
    """
    if "keras" not in sys.modules:
        saved = os.environ.get("KERAS_BACKEND")
        os.environ["KERAS_BACKEND"] = "numpy"
        try:
            importlib.import_module("keras")
        finally:
            if saved is None:
                os.environ.pop("KERAS_BACKEND", None)
            else:
                os.environ["KERAS_BACKEND"] = saved
    keras = sys.modules["keras"]
    backend = keras.backend.backend()
    if backend != "numpy":
        return f"keras already imported with the {backend} backend"
    return keras


def _keras_glorot(case: str, out: npt.NDArray[Any], ctx: Context) -> Runner | str:
    keras = _import_keras_numpy()
    if isinstance(keras, str):
        return keras
    init = keras.initializers.GlorotUniform(seed=SEED)
    shape, dtype = out.shape, out.dtype.name
    init((2, 2), dtype=dtype)   # Keras' lazy set-up, outside the timed calls
    return Runner(lambda: init(shape, dtype=dtype), allocates_output=True,
                  note="GlorotUniform, numpy backend: float64 uniform + astype")


# -- orthogonal -------------------------------------------------------------------------


def _blas_note(ctx: Context) -> str:
    """Limit the loaded BLAS libraries to the run's threads; the note saying so."""
    if ctx["blas"].limit(ctx["threads"]):
        return f"{_threads(ctx)}"
    if importlib.util.find_spec("threadpoolctl") is None:
        return "BLAS's own threads (no threadpoolctl)"
    return "BLAS's own threads"


def _fastinit_orthogonal(case: str, out: npt.NDArray[Any], ctx: Context) -> Runner | str:
    from ..initializers import Orthogonal
    set_num_threads(ctx["threads"])
    init = Orthogonal(seed=SEED)
    init((2, 2))  # loads SciPy's LAPACK (if any), so that its threads can be limited
    return Runner(lambda: init(out.shape, out=out),
                  note=f"initializers.Orthogonal, {_blas_note(ctx)}", compiles=True)


def numpy_orthogonal(gen: np.random.Generator,
                     out: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.floating[Any]]:
    """A Haar orthogonal matrix into the square ``out``: ``numpy.linalg.qr`` of a Gaussian.

    The plain reference (what Keras, PyTorch and JAX compute): the Gaussian matrix is
    drawn into ``out``, factorised by ``numpy.linalg.qr`` (``Q`` and ``R`` are new
    arrays), and ``Q`` times ``sign(diag(R))`` (Mezzadri's sign fix) is written back.
    """
    gen.standard_normal(dtype=out.dtype, out=out)
    q, r = np.linalg.qr(out)
    np.multiply(q, np.sign(np.diagonal(r)), out=out)
    return out


def _numpy_orthogonal(case: str, out: npt.NDArray[Any], ctx: Context) -> Runner | str:
    if out.dtype not in (np.float32, np.float64):
        return f"no {out.dtype.name} in numpy.linalg.qr"
    gen = np.random.Generator(np.random.PCG64(SEED))
    return Runner(lambda: numpy_orthogonal(gen, out),
                  note=f"Generator + linalg.qr + sign fix, {_blas_note(ctx)}")


def _scipy_orthogonal(case: str, out: npt.NDArray[Any], ctx: Context) -> Runner | str:
    if out.dtype not in (np.float32, np.float64):
        return f"no {out.dtype.name} in scipy.linalg.qr"
    import scipy.linalg
    gen = np.random.Generator(np.random.PCG64(SEED))

    def call() -> Any:
        gen.standard_normal(dtype=out.dtype, out=out)
        # out.T is Fortran-ordered: LAPACK factorises it in place (overwrite_a).
        q, r = scipy.linalg.qr(out.T, overwrite_a=True, mode="economic", check_finite=False)
        np.multiply(q, np.sign(np.diagonal(r)), out=out)
        return out
    return Runner(call, note=f"qr(overwrite_a, economic) + sign fix, {_blas_note(ctx)}")


def _torch_orthogonal(case: str, out: npt.NDArray[Any], ctx: Context) -> Runner | str:
    if out.dtype not in (np.float32, np.float64):
        return f"no {out.dtype.name} QR in torch.linalg (CPU)"
    import torch
    torch.set_num_threads(ctx["threads"])
    torch.manual_seed(SEED)
    t = torch.zeros(out.shape, dtype=getattr(torch, out.dtype.name))
    return Runner(lambda: torch.nn.init.orthogonal_(t),
                  note=f"nn.init.orthogonal_, {_threads(ctx)}")


def _jax_orthogonal(case: str, out: npt.NDArray[Any], ctx: Context) -> Runner | str:
    if out.dtype not in (np.float32, np.float64):
        return f"no {out.dtype.name} QR in jax.numpy.linalg"
    return _jax_initializer("orthogonal")(case, out, ctx)


# -- a whole model: a Llama-style transformers model, initialised three ways ------------


def model_config(size: int) -> dict[str, int]:
    """The Llama-style config of the ``model`` case for about ``size`` parameters: hidden
    1024 (512 below 1e8 parameters), intermediate 2.75x hidden, 16 heads, vocabulary 32000
    (4000), untied embeddings, and as many layers as ``size`` allows (at least one)."""
    hidden, vocab = (1024, 32000) if size >= 10**8 else (512, 4000)
    config = {"hidden_size": hidden, "intermediate_size": hidden * 11 // 4,
              "num_attention_heads": 16, "num_key_value_heads": 16, "vocab_size": vocab,
              "num_hidden_layers": 1}
    per_layer = _llama_parameters(config) - _llama_parameters({**config,
                                                               "num_hidden_layers": 0})
    rest = size - _llama_parameters({**config, "num_hidden_layers": 0})
    config["num_hidden_layers"] = max(1, round(rest / per_layer))
    return config


def _llama_parameters(c: dict[str, int]) -> int:
    h, i, v, n = (c["hidden_size"], c["intermediate_size"], c["vocab_size"],
                  c["num_hidden_layers"])
    kv = h // c["num_attention_heads"] * c["num_key_value_heads"]
    return 2 * v * h + h + n * (2 * h * h + 2 * h * kv + 3 * h * i + 2 * h)


def _model(how: str) -> Factory:
    """A row of the model case: ``transformers`` (its own init, torch's generator),
    ``fast_init`` (the same code on fastinit) or ``init_module_`` (meta build, to_empty,
    init_module_)."""
    def make(case: str, out: npt.NDArray[Any], ctx: Context) -> Runner | str:
        if not _installed("transformers"):
            return "needs transformers"
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM
        import fastinit.torch as ft
        torch.set_num_threads(ctx["threads"])
        set_num_threads(ctx["threads"])
        config = LlamaConfig(**model_config(ctx["size"]), dtype=out.dtype.name)

        def build() -> Any:
            return LlamaForCausalLM._from_config(config)

        if how == "transformers":
            call, note = build, "LlamaForCausalLM(config), torch's generator"
        elif how == "fast_init":
            def call() -> Any:
                with ft.fast_init(SEED):
                    return build()
            note = "the same, inside fastinit.torch.fast_init"
        else:
            def call() -> Any:
                with torch.device("meta"):
                    model = build()
                model.to_empty(device="cpu")
                return ft.init_module_(model, SEED)
            note = "meta build, to_empty, init_module_"
        layers = config.num_hidden_layers
        return Runner(call, allocates_output=True, compiles=True,
                      note=f"{note}, {layers} layers, {_threads(ctx)}")
    return make


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _jax_xla(who: str) -> Factory:
    """A row of the JAX cases: ``fastinit.jax`` (XLA) or ``jax.random`` (threefry), jitted."""
    def make(case: str, out: npt.NDArray[Any], ctx: Context) -> Runner | str:
        import jax
        import jax.numpy as jnp
        if out.dtype == np.float64 and not getattr(jax.config, "jax_enable_x64"):  # noqa: B009
            return "float64 needs jax_enable_x64"
        dtype, shape = jnp.dtype(out.dtype.name), out.shape
        normal = case == "jax_normal"
        if who == "jax.random":
            draw = (jax.random.normal if normal else
                    lambda k, s, d: jax.random.truncated_normal(k, -TRUNCATION, TRUNCATION, s, d))
            note = "default threefry, jit"
        else:
            import fastinit.jax as fj
            init = fj.normal(1.0) if normal else fj.truncated_normal(1.0, lower=-TRUNCATION,
                                                                     upper=TRUNCATION)
            draw, note = init, "the stream in XLA, jit (bits of the numba row)"
        fn = jax.jit(lambda k: draw(k, shape, dtype))
        key = jax.random.key(SEED)
        fn(key).block_until_ready()    # compiled outside the timing
        return Runner(lambda: fn(key), allocates_output=True,
                      finish=lambda r: r.block_until_ready(), note=note)
    return make


def implementations(case: str) -> list[tuple[str, Factory]]:
    """``(name, factory)`` for the rows of ``case``; optional peers only when installed."""
    if case in JAX_CASES:
        return [("fastinit.jax", _jax_xla("fastinit.jax")),
                ("jax.random", _jax_xla("jax.random"))]
    if case == "model":
        return [("fastinit init_module_", _model("init_module_")),
                ("fastinit fast_init", _model("fast_init")),
                ("transformers", _model("transformers"))]
    if case == "variance_scaling":
        rows = [("fastinit numba", _fastinit_glorot("numba")),
                ("fastinit numpy", _fastinit_glorot("numpy")),
                ("numpy Generator", _numpy_glorot)]
        for module, name, factory in (("torch", "torch", _torch_glorot),
                                      ("jax", "jax", _jax_initializer("glorot_uniform")),
                                      ("keras", "keras (numpy)", _keras_glorot)):
            if _installed(module):
                rows.append((name, factory))
        return rows
    if case == "orthogonal":
        rows = [("fastinit", _fastinit_orthogonal), ("numpy.linalg.qr", _numpy_orthogonal)]
        for module, name, factory in (("scipy", "scipy.linalg.qr", _scipy_orthogonal),
                                      ("torch", "torch", _torch_orthogonal),
                                      ("jax", "jax", _jax_orthogonal)):
            if _installed(module):
                rows.append((name, factory))
        return rows
    rows = [("fastinit numba", _fastinit("numba")), ("fastinit numpy", _fastinit("numpy"))]
    if case == "truncated_normal":
        rows.append(("numpy rejection", _numpy_rejection))
    else:
        rows.append(("numpy Generator", _numpy_generator))
    if importlib.util.find_spec("torch") is not None:
        rows.append(("torch", _torch))
    if importlib.util.find_spec("jax") is not None:
        rows.append(("jax", _jax))
    return rows


