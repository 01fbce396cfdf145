"""Model specs (JSON or TOML): tensor names, shapes, dtypes and initializers, checked."""

from __future__ import annotations

import json
import math
import os
import reprlib
import sys
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from .. import _dtypes, sharding
from .._checks import check_shape, check_uint64
from .._units import parse_bytes
from ._safetensors import SAFETENSORS_DTYPES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from .._typing import Seed, StrPath

__all__ = ["SpecError", "TensorSpec", "load_spec", "parse_spec", "check_file_names"]

_TOP_KEYS = ("tensors", "seed", "max_shard_size", "metadata")
RESERVED_METADATA = ("format", "fastinit_seed", "fastinit_stream_version")


class SpecError(ValueError):
    """A spec that cannot be materialised; the message names the bad entry."""


@dataclass
class TensorSpec:
    """One checked tensor of a spec."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    initializer: Callable[..., Any]
    stream: int

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


class SpecOptions(TypedDict):
    """A spec's options (:func:`parse_spec`)."""

    seed: int
    max_shard_size: int | None
    metadata: dict[str, str]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise SpecError(f"Duplicate name {key!r} in the spec. Received: {key!r} twice")
        seen[key] = value
    return seen


def load_spec(path: StrPath) -> Any:
    """Read a spec file (``.json``, or ``.toml`` on Python 3.11+) into a dict; SpecError on
    bad syntax."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise SpecError(f"Cannot read the spec file {path!r}: {exc.strerror}") from None
    try:
        if path.lower().endswith(".toml"):
            if sys.version_info < (3, 11):   # tomllib is Python 3.11's
                raise SpecError(f"TOML specs need Python 3.11 or later (tomllib); this is "
                                f"Python {sys.version_info[0]}.{sys.version_info[1]}. Write "
                                f"the spec as JSON. Received: {path!r}")
            else:   # a version check checkers understand: no tomllib on 3.10
                import tomllib
                try:
                    return tomllib.loads(data.decode("utf-8"))
                except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                    raise SpecError(f"Invalid TOML in {path!r}: {exc}") from None
        try:
            return json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
        except SpecError as exc:
            raise SpecError(f"{exc} (in {path!r})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SpecError(f"Invalid JSON in {path!r}: {exc}") from None
    except RecursionError:
        raise SpecError(f"The spec {path!r} is nested too deeply to read.") from None


def parse_spec(spec: Mapping[str, Any] | StrPath, seed: Seed = None
               ) -> tuple[list[TensorSpec], SpecOptions]:
    """Check a spec (a dict, or a path to a JSON/TOML file) and resolve its initializers.

    Returns
    -------
    (list of TensorSpec, dict of options)
        Options: ``seed`` (the run's seed, the argument winning over the
        spec's), ``max_shard_size`` (or None) and ``metadata`` (a dict of
        strings, written into the files' ``__metadata__``).
    """
    if isinstance(spec, (str, os.PathLike)):
        spec = load_spec(spec)
    if not isinstance(spec, dict):
        raise SpecError("A spec is a mapping with a 'tensors' table. "
                        f"Received: {type(spec).__name__}")
    unknown = set(spec) - set(_TOP_KEYS)
    if unknown:
        raise SpecError(f"Unknown top-level keys {sorted(map(str, unknown))} in the spec "
                        f"(expected {', '.join(map(repr, _TOP_KEYS))}).")
    tensors = spec.get("tensors")
    items: list[tuple[Any, Any]]
    if isinstance(tensors, list):
        items = []
        for i, entry in enumerate(tensors):
            if not isinstance(entry, dict) or "name" not in entry:
                raise SpecError(f"Tensor entry #{i} needs a 'name'. "
                                f"Received: {reprlib.repr(entry)}")
            items.append((entry["name"], {k: v for k, v in entry.items() if k != "name"}))
        names = [n for n, _ in items]
        dup = sorted({str(n) for n in names if names.count(n) > 1})
        if dup:
            raise SpecError(f"Duplicate tensor names in the spec: {dup}")
    elif isinstance(tensors, dict):
        items = list(tensors.items())
    else:
        raise SpecError("A spec needs a 'tensors' table (name -> {shape, dtype, initializer}). "
                        f"Received: tensors={reprlib.repr(tensors)}")
    if seed is None:
        seed = spec.get("seed")
    if seed is None:
        raise SpecError("No seed: give --seed N (or seed= / a top-level 'seed' in the spec).")
    try:
        run_seed: int = check_uint64(seed, "seed")
    except (TypeError, ValueError) as exc:
        raise SpecError(str(exc)) from None
    options: SpecOptions = {"seed": run_seed, "max_shard_size": None,
                            "metadata": _metadata(spec.get("metadata", {}))}
    if spec.get("max_shard_size") is not None:
        options["max_shard_size"] = _bytes(spec["max_shard_size"], "max_shard_size")
    return [_tensor(name, entry, run_seed) for name, entry in items], options


def _bytes(value: int | str, name: str) -> int:
    try:
        return parse_bytes(value, name)
    except ValueError as exc:
        raise SpecError(str(exc)) from None


def _metadata(metadata: object) -> dict[str, str]:
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise SpecError("metadata is a table of strings (written to the files' "
                        f"__metadata__). Received: metadata={reprlib.repr(metadata)}")
    reserved = sorted(set(metadata) & set(RESERVED_METADATA))
    if reserved:
        raise SpecError(f"metadata keys {reserved} are fastinit's own. "
                        f"Received: metadata={reprlib.repr(metadata)}")
    return dict(metadata)


def check_tensor_name(name: object) -> str:
    """A tensor name: a non-empty string that is not safetensors' ``__metadata__`` key."""
    if not isinstance(name, str) or not name:
        raise SpecError(f"Tensor names must be non-empty strings. Received: {reprlib.repr(name)}")
    if name == "__metadata__":
        raise SpecError("'__metadata__' is the safetensors header's own key, not a tensor "
                        "name. Received: name='__metadata__'")
    if "\0" in name:
        raise SpecError(f"Tensor names must not contain NUL. Received: {reprlib.repr(name)}")
    return name


def check_file_names(names: Iterable[str], suffix: str) -> list[str]:
    """File names ``name + suffix`` for tensor names, refusing any that could leave the
    output directory or collide with another after normalisation (case, Unicode)."""
    seen: dict[str, str] = {}
    files = []
    for name in names:
        file = name + suffix
        if (name in (".", "..") or "/" in name or "\\" in name or name.startswith(".")
                or os.path.isabs(file) or file != os.path.basename(file)):
            raise SpecError(f"Tensor name {name!r} cannot be a file name in the output "
                            "directory (no '/', '\\', leading '.', '..' or absolute path). "
                            f"Received: name={name!r}")
        key = unicodedata.normalize("NFC", os.path.normcase(file)).casefold()
        if key in seen:
            raise SpecError(f"Tensor names {seen[key]!r} and {name!r} give the same file name "
                            f"on some file systems. Received: {seen[key]!r}, {name!r}")
        seen[key] = name
        files.append(file)
    return files


def _tensor(name: object, entry: object, seed: int) -> TensorSpec:
    from ..initializers import Initializer, deserialize

    name = check_tensor_name(name)
    where = f"tensor {reprlib.repr(name)}"
    if not isinstance(entry, dict):
        raise SpecError(f"{where}: expected a table with shape, dtype, initializer. "
                        f"Received: {reprlib.repr(entry)}")
    extra = set(entry) - {"shape", "dtype", "initializer"}
    if extra:
        raise SpecError(f"{where}: unknown keys {sorted(map(str, extra))} "
                        "(expected 'shape', 'dtype', 'initializer').")
    if "shape" not in entry or "initializer" not in entry:
        raise SpecError(f"{where}: 'shape' and 'initializer' are required. "
                        f"Received: {reprlib.repr(entry)}")
    shape = entry["shape"]
    if not isinstance(shape, list) or any(isinstance(d, bool) or not isinstance(d, int)
                                          for d in shape):
        raise SpecError(f"{where}: shape must be a list of integers. "
                        f"Received: shape={reprlib.repr(shape)}")
    try:
        shape = check_shape(tuple(shape))
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{where}: {exc}") from None
    config = entry["initializer"]
    try:
        init = deserialize(config)
        if not isinstance(init, Initializer):
            raise ValueError(f"{reprlib.repr(config)} is not an Initializer")
        if init.get_config().get("seed") is None:  # the run's seed, unless the config has one
            init = init.with_seed(seed)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{where}: bad initializer: {exc}") from None
    dtype_name = entry.get("dtype", "float32")
    try:
        dtype = _dtypes.resolve(dtype_name, init.dtype_kind)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{where}: bad dtype for {type(init).__name__}: {exc}") from None
    if dtype.name not in SAFETENSORS_DTYPES:
        raise SpecError(f"{where}: safetensors has no dtype {dtype.name}. "
                        f"Received: dtype={dtype_name!r}")
    try:
        init.check(shape, dtype)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{where}: {exc}") from None
    return TensorSpec(name, shape, dtype, init, sharding.name_stream(name))
