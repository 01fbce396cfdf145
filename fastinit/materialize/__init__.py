"""Out-of-core checkpoints: a model description to safetensors (or ``.npy``) files.

A *spec* (JSON or TOML) names tensors and says how to initialise them;
:func:`materialize` writes them chunk by chunk with memory bounded by a few
buffers, atomically, and :func:`materialize_npy` writes one tensor to a
``.npy`` file. Tensor ``name`` draws from stream
:func:`fastinit.sharding.name_stream` ``(name)`` under the run's seed. The
spec format, the file layout and the guarantees are in ``docs/scaleout.md``;
the command line is ``fastinit materialize SPEC OUT_DIR --seed N``.

:func:`materialize_module` writes the checkpoint of a torch model (a
transformers model loads it with ``from_pretrained``) without allocating it.

Modules: ``_spec`` (specs), ``_safetensors`` (file layout), ``_writer``
(the engine: aligned buffers, direct I/O, writer threads), ``_staging`` (the commit protocol and crash
recovery), ``_lock`` (one writer per directory), ``_signals`` (signals held
during a commit), ``_commit`` (a checkpoint's run: checks, staging, writing,
commit), ``_npy`` (the ``.npy`` format, shared with :mod:`fastinit.dask`),
``_module`` (torch models), ``_config`` (a transformers ``config.json``: its
size estimated, its model built), ``_cli`` (the command).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal, SupportsIndex, cast, overload

from .._units import parse_bytes
from ._commit import chunk_size as _chunk_bytes
from ._commit import run as _run
from ._commit import write_safetensors
from ._lock import DirectoryBusyError
from ._module import materialize_module
from ._npy import check_dtype as _check_npy_dtype
from ._npy import header as _npy_header
from ._safetensors import INDEX_SUFFIX, plan_files
from ._spec import SpecError, TensorSpec, check_file_names, load_spec, parse_spec

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import numpy.typing as npt

    from .._typing import Backend, InitializerLike, Seed, ShapeLike, StrPath
    from ._plan import Plan
    from ._staging import Transaction
    from ._writer import Engine

__all__ = ["SpecError", "TensorSpec", "load_spec", "parse_spec", "plan_files", "materialize",
           "materialize_npy", "materialize_module", "INDEX_NAME", "DEFAULT_CHUNK_BYTES",
           "DirectoryBusyError"]

INDEX_NAME = "model" + INDEX_SUFFIX
DEFAULT_CHUNK_BYTES = 32 << 20  # also _module.DEFAULT_CHUNK_BYTES


@overload
def materialize(spec: Mapping[str, Any] | StrPath, out_dir: StrPath, seed: Seed = None, *,
                max_shard_size: int | str | None = None, chunk_bytes: int = ...,
                backend: Backend = "auto", progress: bool | None = None, prefix: str = "model",
                check_space: bool = True, lock_timeout: float | None = 0.0,
                dry_run: Literal[False] = False) -> list[str]: ...


@overload
def materialize(spec: Mapping[str, Any] | StrPath, out_dir: StrPath, seed: Seed = None, *,
                max_shard_size: int | str | None = None, chunk_bytes: int = ...,
                backend: Backend = "auto", progress: bool | None = None, prefix: str = "model",
                check_space: bool = True, lock_timeout: float | None = 0.0,
                dry_run: Literal[True]) -> Plan: ...


@overload
def materialize(spec: Mapping[str, Any] | StrPath, out_dir: StrPath, seed: Seed = None, *,
                max_shard_size: int | str | None = None, chunk_bytes: int = ...,
                backend: Backend = "auto", progress: bool | None = None, prefix: str = "model",
                check_space: bool = True, lock_timeout: float | None = 0.0,
                dry_run: bool = False) -> list[str] | Plan: ...


def materialize(spec: Mapping[str, Any] | StrPath, out_dir: StrPath, seed: Seed = None, *,
                max_shard_size: int | str | None = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                backend: Backend = "auto", progress: bool | None = None, prefix: str = "model",
                check_space: bool = True, lock_timeout: float | None = 0.0,
                dry_run: bool = False) -> list[str] | Plan:
    """Write the tensors of ``spec`` to safetensors files in ``out_dir``.

    One file ``<prefix>.safetensors``, or, when the data exceed
    ``max_shard_size``, ``<prefix>-00001-of-0000N.safetensors`` ... and the
    standard ``<prefix>.safetensors.index.json``. Every file is written in a
    staging directory and the set is committed at once: an earlier
    checkpoint of the same prefix in ``out_dir`` is replaced whole (its
    other shard files are removed), and a run killed at any point leaves the
    old checkpoint or the new one (the protocol: ``docs/guarantees.md``). One run
    writes to a directory at a time.

    Parameters
    ----------
    spec : dict or path
        A spec dict, or a ``.json`` / ``.toml`` file.
    out_dir : path
        Created if missing.
    seed : int, optional
        The run's seed (else the spec's ``seed``).
    max_shard_size : int or str, optional
        Bytes of tensor data per file (else the spec's ``max_shard_size``;
        else one file).
    chunk_bytes : int
        Size of each of the four buffers data are produced into.
    backend : {"auto", "numba", "numpy"}
    progress : bool, optional
        A progress bar on stderr (tqdm when installed); default: when stderr is a terminal.
    prefix : str
        File names start with it (``model``).
    check_space : bool
        Refuse, before writing anything, a run whose files do not fit in the
        free disk space or whose global tensors (computed whole) do not fit
        in the available memory.
    lock_timeout : float or None
        Seconds to wait while another run writes to ``out_dir`` (0: fail at once
        with ``DirectoryBusyError``; None: wait as long as it takes).
    dry_run : bool
        Write nothing: return the plan (files, bytes; ``describe()`` adds the
        memory needed and an estimated time).

    Returns
    -------
    list of str
        The paths written, the index (if any) last (a ``Plan`` for ``dry_run``).

    Examples
    --------
    >>> import tempfile, numpy as np, safetensors.numpy
    >>> import fastinit.initializers as fi
    >>> from fastinit.sharding import name_stream
    >>> spec = {"tensors": {"w": {"shape": [4, 3], "initializer": "he_normal"}}}
    >>> d = tempfile.mkdtemp()
    >>> [os.path.basename(p) for p in materialize(spec, d, seed=7)]
    ['model.safetensors']
    >>> loaded = safetensors.numpy.load_file(os.path.join(d, "model.safetensors"))
    >>> bool(np.array_equal(loaded["w"], fi.HeNormal(seed=7)((4, 3), stream=name_stream("w"))))
    True
    """
    tensors, options = parse_spec(spec, seed)
    if max_shard_size is not None:
        options["max_shard_size"] = parse_bytes(max_shard_size, "max_shard_size")
    from .. import STREAM_VERSION
    metadata = {**options["metadata"], "format": "pt", "fastinit_seed": options["seed"],
                "fastinit_stream_version": STREAM_VERSION}
    return write_safetensors(out_dir, tensors, metadata, max_shard_size=options["max_shard_size"],
                             prefix=prefix, chunk_bytes=chunk_bytes, backend=backend,
                             progress=progress, check_space=check_space,
                             lock_timeout=lock_timeout, dry_run=dry_run)


def materialize_npy(initializer: InitializerLike, shape: ShapeLike, path: StrPath, *,
                    dtype: npt.DTypeLike = "float32", seed: Seed = None, name: str | None = None,
                    stream: SupportsIndex | None = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                    backend: Backend = "auto", progress: bool | None = False,
                    check_space: bool = True, lock_timeout: float | None = 0.0) -> str:
    """Write one tensor to a ``.npy`` file, chunk by chunk, atomically.

    The stream is ``stream``, else :func:`~fastinit.sharding.name_stream` of
    ``name``, else 0. A seeded initializer given by name or config takes
    ``seed``. bfloat16 has no ``.npy`` type and is refused. ``lock_timeout``: as for
    :func:`materialize` (the lock is the directory's).

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from fastinit import sharding
    >>> p = os.path.join(tempfile.mkdtemp(), "w.npy")
    >>> _ = materialize_npy("glorot_uniform", (5, 3), p, seed=1, name="w")
    >>> import fastinit.initializers as fi
    >>> bool(np.array_equal(np.load(p), fi.GlorotUniform(seed=1)((5, 3), stream=sharding.name_stream("w"))))
    True
    """
    from .. import _dtypes, sharding
    from .._checks import check_shape, check_uint64
    from ..initializers import Initializer, get

    init = get(initializer)
    if isinstance(initializer, (str, dict)) and isinstance(init, Initializer) \
            and seed is not None:  # a name or config is always an Initializer
        init = init.with_seed(seed)
    dims: tuple[int, ...] = check_shape(shape)
    resolved = _dtypes.resolve(dtype, getattr(init, "dtype_kind", "any"))
    _check_npy_dtype(resolved)
    if isinstance(init, Initializer):
        init.check(dims, resolved)
    if stream is not None:
        stream_id: int = check_uint64(stream, "stream")
    else:
        stream_id = 0 if name is None else sharding.name_stream(name)
    path = os.fspath(path)
    tensor = TensorSpec(name or os.path.basename(path), dims, resolved, init, stream_id)
    paths = _write_npy_files(os.path.dirname(os.path.abspath(path)),
                             [(os.path.basename(path), tensor)], chunk_bytes, backend,
                             progress, check_space, lock_timeout)
    return cast("list[str]", paths)[0]  # not a dry run: the paths written


def materialize_npy_files(tensors: Sequence[TensorSpec], out_dir: StrPath, *,
                          chunk_bytes: int = DEFAULT_CHUNK_BYTES, backend: Backend = "auto",
                          progress: bool | None = None, check_space: bool = True,
                          lock_timeout: float | None = 0.0,
                          dry_run: bool = False) -> list[str] | Plan:
    """Write checked tensors (:class:`TensorSpec`) to ``out_dir/<name>.npy``, committed together
    (``dry_run``: the plan, nothing written)."""
    files = check_file_names([t.name for t in tensors], ".npy")
    for t in tensors:
        try:
            _check_npy_dtype(t.dtype)
        except ValueError as exc:
            raise SpecError(f"tensor {t.name!r}: {exc}") from None
    return _write_npy_files(out_dir, list(zip(files, tensors)), chunk_bytes, backend,
                            progress, check_space, lock_timeout, dry_run)


def _write_npy_files(out_dir: StrPath, files: Sequence[tuple[str, TensorSpec]],
                     chunk_bytes: int, backend: Backend, progress: bool | None,
                     check_space: bool, lock_timeout: float | None,
                     dry_run: bool = False) -> list[str] | Plan:
    chunk_bytes = _chunk_bytes(chunk_bytes)
    headers = [_npy_header(t.shape, t.dtype) for _, t in files]

    def write(staging: Transaction, engine: Engine) -> None:
        for (name, t), head in zip(files, headers):
            engine.write_file(staging.path(name), head, [t])

    return _run(out_dir, [t for _, t in files],
                [(name, len(head) + t.nbytes) for (name, t), head in zip(files, headers)],
                write, chunk_bytes=chunk_bytes, backend=backend, progress=progress,
                check_space=check_space, lock_timeout=lock_timeout, dry_run=dry_run)


