"""Out-of-core checkpoint materialisation: a model description to safetensors (or .npy) files.

A *spec* names tensors and says how to initialise them. :func:`materialize`
writes them to safetensors files, tensor by tensor and chunk by chunk, with
memory bounded by a few chunks (not by the size of a tensor), and
:func:`materialize_npy` writes one tensor to a ``.npy`` file. The command
line is ``fastinit materialize SPEC OUT_DIR --seed N``.

The spec (JSON or TOML)
-----------------------
JSON::

    {"tensors": {
        "embed.weight": {"shape": [50000, 1024], "dtype": "bfloat16",
                         "initializer": {"class_name": "RandomNormal",
                                         "config": {"stddev": 0.02}}},
        "layers.0.mlp.weight": {"shape": [1024, 4096], "initializer": "glorot_uniform"},
        "layers.0.norm.weight": {"shape": [1024], "initializer": "ones"}
    }}

TOML::

    [tensors."embed.weight"]
    shape = [50000, 1024]
    dtype = "bfloat16"
    initializer = { class_name = "RandomNormal", config = { stddev = 0.02 } }

- ``shape``: a list of non-negative integers (``[]`` is a scalar).
- ``dtype`` (default ``"float32"``): float16, bfloat16, float32, float64 for
  random initializers; constant ones also take integer and bool dtypes.
- ``initializer``: anything :func:`fastinit.initializers.deserialize` takes
  (a registered name or ``{"class_name": ..., "config": {...}}``). Shapes
  are in the initializer's layout (Keras' ``(..., in, out)`` for fans).
- Optional top-level ``seed`` (the ``--seed`` option wins) and
  ``max_shard_size`` (bytes, or a string such as ``"5GB"``, ``"500MiB"``).

Tensor ``name`` is drawn from stream :func:`fastinit.sharding.name_stream`
``(name)`` under the run's seed (a seed given in a tensor's initializer
config wins for that tensor), so a tensor's values depend only on
``(seed, name, shape, dtype, initializer)``: adding, removing or reordering
tensors leaves the others unchanged, and every value equals what
``initializer(shape, dtype, stream=name_stream(name))`` gives in memory.

Output
------
One file ``model.safetensors``, or, when the data exceed ``max_shard_size``,
``model-00001-of-0000N.safetensors`` ... plus the standard
``model.safetensors.index.json`` (``{"metadata": {"total_size": ...},
"weight_map": {name: file}}``). A tensor is never split across files (a
tensor larger than the limit gets a file of its own). The format is
safetensors' own (8-byte little-endian header length, JSON header padded
with spaces to a multiple of 8, tensors back to back in C order); files are
read back with ``safetensors.numpy.load_file`` or ``safetensors.torch``.

Atomicity: every file is first written into a staging directory
``OUT_DIR/.fastinit-tmp-<pid>-<random>``, flushed and ``fsync``-ed; only
when all files are complete are they moved into place with ``os.replace``
(the index last) and the directory is ``fsync``-ed. An interrupted run leaves
no file under its final name that is incomplete; its staging directory is
removed on an exception or signal, and a staging directory left behind by a
killed process (``SIGKILL``, power loss) is removed by the next run.

Memory and speed: data are produced into a few reusable buffers of
``chunk_bytes`` (default 32 MiB) and written by a background thread while the
next chunk is computed. Elementwise initializers
(:func:`fastinit.sharding.is_elementwise`) need nothing more; global ones
(``Orthogonal``, ``Sparse``, ...) are computed whole in memory, one tensor at
a time.
"""

import json
import math
import os
import queue
import re
import secrets
import shutil
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from . import sharding

__all__ = ["SpecError", "TensorSpec", "load_spec", "parse_spec", "plan_files",
           "materialize", "materialize_npy", "INDEX_NAME"]

INDEX_NAME = "model.safetensors.index.json"
STAGING_PREFIX = ".fastinit-tmp-"
DEFAULT_CHUNK_BYTES = 32 << 20
_N_BUFFERS = 3

#: numpy dtype name -> safetensors dtype code.
SAFETENSORS_DTYPES = {
    "float16": "F16", "bfloat16": "BF16", "float32": "F32", "float64": "F64",
    "int8": "I8", "int16": "I16", "int32": "I32", "int64": "I64",
    "uint8": "U8", "uint16": "U16", "uint32": "U32", "uint64": "U64", "bool": "BOOL",
}

_SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}


class SpecError(ValueError):
    """A spec that cannot be materialised; the message names the bad entry."""


@dataclass
class TensorSpec:
    """One checked tensor of a spec."""

    name: str
    shape: tuple
    dtype: np.dtype
    initializer: object
    stream: int

    @property
    def nbytes(self):
        return math.prod(self.shape) * self.dtype.itemsize


# -- the spec ---------------------------------------------------------------------------


def _no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise SpecError(f"Duplicate name {key!r} in the spec. Received: {key!r} twice")
        seen[key] = value
    return seen


def load_spec(path):
    """Read a spec file (``.json``, or ``.toml``) into a dict; SpecError on bad syntax."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise SpecError(f"Cannot read the spec file {path!r}: {exc.strerror}") from None
    if path.lower().endswith(".toml"):
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


def parse_size(value):
    """Bytes from an int or a string such as ``"5GB"`` or ``"512MiB"``.

    Examples
    --------
    >>> parse_size("5GB"), parse_size("1.5 GiB"), parse_size(1024)
    (5000000000, 1610612736, 1024)
    """
    if isinstance(value, bool):
        raise SpecError(f"A size is a number of bytes or a string like '5GB'. "
                        f"Received: {value!r}")
    if isinstance(value, int):
        size = value
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(value))
        unit = m and m.group(2).upper()
        if not m or unit not in _SIZE_UNITS:
            raise SpecError(f"A size is a number of bytes or a string like '5GB'. "
                            f"Received: {value!r}")
        size = int(float(m.group(1)) * _SIZE_UNITS[unit])
    if size <= 0:
        raise SpecError(f"A size must be positive. Received: {value!r}")
    return size


def parse_spec(spec, seed=None):
    """Check a spec (a dict, or a path to a JSON/TOML file) and resolve its initializers.

    Returns
    -------
    (list of TensorSpec, dict of options)
        Options: ``seed`` (the run's seed, the argument winning over the
        spec's) and ``max_shard_size`` (or None).
    """
    from .initializers import base, deserialize

    if isinstance(spec, (str, os.PathLike)):
        spec = load_spec(spec)
    if not isinstance(spec, dict):
        raise SpecError(f"A spec is a mapping with a 'tensors' table. Received: {type(spec).__name__}")
    unknown = set(spec) - {"tensors", "seed", "max_shard_size", "metadata"}
    if unknown:
        raise SpecError(f"Unknown top-level keys {sorted(unknown)} in the spec "
                        "(expected 'tensors', 'seed', 'max_shard_size', 'metadata').")
    tensors = spec.get("tensors")
    if isinstance(tensors, list):
        items = []
        for i, entry in enumerate(tensors):
            if not isinstance(entry, dict) or "name" not in entry:
                raise SpecError(f"Tensor entry #{i} needs a 'name'. Received: {entry!r}")
            items.append((entry["name"], {k: v for k, v in entry.items() if k != "name"}))
        names = [n for n, _ in items]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise SpecError(f"Duplicate tensor names in the spec: {dup}")
    elif isinstance(tensors, dict):
        items = list(tensors.items())
    else:
        raise SpecError("A spec needs a 'tensors' table (name -> {shape, dtype, initializer}). "
                        f"Received: tensors={tensors!r}")
    if seed is None:
        seed = spec.get("seed")
    if seed is None:
        raise SpecError("No seed: give --seed N (or seed= / a top-level 'seed' in the spec).")
    try:
        seed = base.check_uint64(seed, "seed")
    except (TypeError, ValueError) as exc:
        raise SpecError(str(exc)) from None
    max_shard = spec.get("max_shard_size")
    options = {"seed": seed,
               "max_shard_size": None if max_shard is None else parse_size(max_shard)}
    out = []
    for name, entry in items:
        out.append(_tensor(name, entry, seed, deserialize, base))
    return out, options


def _tensor(name, entry, seed, deserialize, base):
    from . import _region
    if not isinstance(name, str) or not name:
        raise SpecError(f"Tensor names must be non-empty strings. Received: {name!r}")
    where = f"tensor {name!r}"
    if not isinstance(entry, dict):
        raise SpecError(f"{where}: expected a table with shape, dtype, initializer. "
                        f"Received: {entry!r}")
    extra = set(entry) - {"shape", "dtype", "initializer"}
    if extra:
        raise SpecError(f"{where}: unknown keys {sorted(extra)} "
                        "(expected 'shape', 'dtype', 'initializer').")
    if "shape" not in entry or "initializer" not in entry:
        raise SpecError(f"{where}: 'shape' and 'initializer' are required. Received: {entry!r}")
    shape = entry["shape"]
    if not isinstance(shape, list) or any(isinstance(d, bool) or not isinstance(d, int)
                                          for d in shape):
        raise SpecError(f"{where}: shape must be a list of integers. Received: shape={shape!r}")
    try:
        shape = _region.normalize_shape(tuple(shape))
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{where}: {exc}") from None
    config = entry["initializer"]
    try:
        init = deserialize(config)
        if not isinstance(init, base.Initializer):
            raise ValueError(f"{config!r} is not an Initializer")
        if isinstance(init, base.SeededInitializer) and init.get_config().get("seed") is None:
            init = type(init).from_config({**init.get_config(), "seed": seed})
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{where}: bad initializer: {exc}") from None
    dtype_name = entry.get("dtype", "float32")
    try:
        dtype = base.resolve_dtype(dtype_name, init.dtype_kind)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{where}: bad dtype for {type(init).__name__}: {exc}") from None
    if dtype.name not in SAFETENSORS_DTYPES:
        raise SpecError(f"{where}: safetensors has no dtype {dtype.name}. "
                        f"Received: dtype={dtype_name!r}")
    return TensorSpec(name, shape, dtype, init, sharding.name_stream(name))


def plan_files(tensors, max_shard_size=None, prefix="model"):
    """Split tensors (in spec order) into files of at most ``max_shard_size`` bytes of data.

    Returns a list of ``(file_name, [TensorSpec, ...])``.
    """
    groups, current, size = [], [], 0
    for t in tensors:
        if current and max_shard_size is not None and size + t.nbytes > max_shard_size:
            groups.append(current)
            current, size = [], 0
        current.append(t)
        size += t.nbytes
    if current or not groups:
        groups.append(current)
    if len(groups) == 1:
        return [(f"{prefix}.safetensors", groups[0])]
    n = len(groups)
    return [(f"{prefix}-{i + 1:05d}-of-{n:05d}.safetensors", g) for i, g in enumerate(groups)]


def safetensors_header(tensors, metadata=None):
    """The header bytes (length prefix included) of a file holding ``tensors`` in order."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    start = 0
    for t in tensors:
        header[t.name] = {"dtype": SAFETENSORS_DTYPES[t.dtype.name], "shape": list(t.shape),
                          "data_offsets": [start, start + t.nbytes]}
        start += t.nbytes
    body = json.dumps(header, separators=(",", ":")).encode("utf-8")
    body += b" " * (-len(body) % 8)
    return len(body).to_bytes(8, "little") + body


# -- chunks and the writer thread ---------------------------------------------------------


def chunks(shape, max_elements):
    """Yield ``(index, region_shape)`` boxes covering ``shape`` in C order, each contiguous.

    Every box holds at most ``max_elements`` elements (at least one row of the
    innermost axis that fits) and the boxes are consecutive in the flat order.

    Examples
    --------
    >>> [i for i, _ in chunks((3, 4), 8)]
    [(slice(0, 2, None),), (slice(2, 3, None),)]
    >>> [i for i, _ in chunks((2, 5), 3)]
    [(0, slice(0, 3, None)), (0, slice(3, 5, None)), (1, slice(0, 3, None)), (1, slice(3, 5, None))]
    """
    shape = tuple(shape)
    if not shape:
        yield (), ()
        return
    if 0 in shape:
        return
    max_elements = max(1, int(max_elements))
    k = 0
    while math.prod(shape[k + 1:]) > max_elements:
        k += 1
    inner = shape[k + 1:]
    step = max(1, max_elements // math.prod(inner))
    for lead in np.ndindex(*shape[:k]):
        for s in range(0, shape[k], step):
            e = min(s + step, shape[k])
            yield tuple(int(i) for i in lead) + (slice(s, e),), (e - s,) + inner


class _Writer:
    """Writes filled buffers to a file descriptor in a background thread (double buffering)."""

    def __init__(self, chunk_bytes, n_buffers=_N_BUFFERS):
        self.free = queue.Queue()
        for _ in range(n_buffers):
            self.free.put(np.empty(chunk_bytes, dtype=np.uint8))
        self.todo = queue.Queue()
        self.error = None
        self.thread = threading.Thread(target=self._run, name="fastinit-writer", daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            item = self.todo.get()
            if item is None:
                return
            fd, buf, n = item
            try:
                if self.error is None:
                    view = memoryview(buf)[:n]
                    while view:
                        written = os.write(fd, view)
                        view = view[written:]
            except BaseException as exc:  # noqa: BLE001 - reported in the main thread
                self.error = exc
            finally:
                self.free.put(buf)

    def buffer(self):
        self._check()
        return self.free.get()

    def submit(self, fd, buf, n):
        self._check()
        self.todo.put((fd, buf, n))

    def write(self, fd, data):
        """Queue a copy of small ``data`` (bytes) through the buffers, in order."""
        data = memoryview(data).cast("B")
        pos = 0
        while pos < len(data):
            buf = self.buffer()
            n = min(len(buf), len(data) - pos)
            buf[:n] = np.frombuffer(data[pos:pos + n], dtype=np.uint8)
            self.submit(fd, buf, n)
            pos += n

    def drain(self):
        """Wait until everything queued is written; raise the writer's error if any."""
        bufs = [self.free.get() for _ in range(_N_BUFFERS)]
        for b in bufs:
            self.free.put(b)
        self._check()

    def close(self):
        self.todo.put(None)
        self.thread.join()

    def _check(self):
        if self.error is not None:
            raise self.error


class _Progress:
    def __init__(self, total, enabled, desc):
        self.total, self.done, self.bar, self.enabled = total, 0, None, enabled
        self.desc, self.last = desc, 0.0
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return
        self.bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                        desc=desc, file=sys.stderr)

    def update(self, n, note=""):
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and (time.monotonic() - self.last > 1.0 or self.done == self.total):
            self.last = time.monotonic()
            pct = 100.0 * self.done / self.total if self.total else 100.0
            print(f"\r{self.desc}: {self.done / 2**30:.2f} / {self.total / 2**30:.2f} GiB "
                  f"({pct:.0f}%) {note}", end="", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            print(file=sys.stderr, flush=True)


def _fill_tensor(t, fd, writer, chunk_bytes, backend, progress):
    """Stream tensor ``t`` to ``fd`` through the writer's buffers."""
    from .initializers.base import call_initializer

    if t.nbytes == 0:
        return
    if not sharding.is_elementwise(t.initializer):
        whole = np.ascontiguousarray(call_initializer(
            t.initializer, t.shape, t.dtype, stream=t.stream, backend=backend))
        raw = whole.reshape(-1).view(np.uint8)
        for pos in range(0, raw.size, chunk_bytes):
            buf = writer.buffer()
            n = min(chunk_bytes, raw.size - pos)
            buf[:n] = raw[pos:pos + n]
            writer.submit(fd, buf, n)
            progress.update(n)
        return
    for index, region_shape in chunks(t.shape, chunk_bytes // t.dtype.itemsize):
        buf = writer.buffer()
        n = math.prod(region_shape) * t.dtype.itemsize
        out = buf[:n].view(t.dtype).reshape(region_shape)
        call_initializer(t.initializer, t.shape, t.dtype, out=out, index=index,
                         stream=t.stream, backend=backend)
        writer.submit(fd, buf, n)
        progress.update(n)


# -- staging and atomic replacement --------------------------------------------------------


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _clean_stale(out_dir):
    """Remove staging directories that dead processes left in ``out_dir``."""
    for entry in os.listdir(out_dir):
        m = re.fullmatch(re.escape(STAGING_PREFIX) + r"(\d+)-[0-9a-f]+", entry)
        if m and not _pid_alive(int(m.group(1))):
            shutil.rmtree(os.path.join(out_dir, entry), ignore_errors=True)


def _prepare_out_dir(out_dir):
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise NotADirectoryError(f"The output path exists and is not a directory: {out_dir!r}")
    try:
        os.makedirs(out_dir, exist_ok=True)
        _clean_stale(out_dir)
        staging = os.path.join(out_dir, f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}")
        os.mkdir(staging)
    except PermissionError as exc:
        raise PermissionError(f"The output directory {out_dir!r} is not writable: "
                              f"{exc.strerror}. Nothing was written.") from None
    except OSError as exc:
        raise OSError(exc.errno, f"Cannot create the output directory {out_dir!r}: "
                                 f"{exc.strerror}. Nothing was written.") from None
    return out_dir, staging


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _write_file(path, header, tensors, writer, chunk_bytes, backend, progress):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        writer.write(fd, header)
        for t in tensors:
            _fill_tensor(t, fd, writer, chunk_bytes, backend, progress)
        writer.drain()
        os.fsync(fd)
    finally:
        os.close(fd)


def _progress_enabled(progress):
    if progress is None:
        return sys.stderr is not None and sys.stderr.isatty()
    return bool(progress)


def materialize(spec, out_dir, seed=None, *, max_shard_size=None, chunk_bytes=DEFAULT_CHUNK_BYTES,
                backend="auto", progress=None, prefix="model"):
    """Write the tensors of ``spec`` to safetensors files in ``out_dir`` (see the module docstring).

    Parameters
    ----------
    spec : dict or path
        A spec dict, or a ``.json`` / ``.toml`` file.
    out_dir : path
        Created if missing. Existing files of the same names are replaced.
    seed : int, optional
        The run's seed (else the spec's ``seed``).
    max_shard_size : int or str, optional
        Bytes of tensor data per file (else the spec's ``max_shard_size``;
        else one file).
    chunk_bytes : int
        Size of each of the (three) buffers data are produced into.
    backend : {"auto", "numba", "numpy"}
    progress : bool, optional
        A progress bar on stderr (tqdm when installed); default: when stderr is a terminal.
    prefix : str
        File names start with it (``model``).

    Returns
    -------
    list of str
        The paths written, the index (if any) last.

    Examples
    --------
    >>> import tempfile, safetensors.numpy
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
        options["max_shard_size"] = parse_size(max_shard_size)
    chunk_bytes = int(chunk_bytes)
    if chunk_bytes < 4096:
        raise ValueError(f"chunk_bytes must be >= 4096. Received: chunk_bytes={chunk_bytes}")
    chunk_bytes -= chunk_bytes % 8
    files = plan_files(tensors, options["max_shard_size"], prefix)
    from . import STREAM_VERSION
    metadata = {"format": "pt", "fastinit_seed": options["seed"],
                "fastinit_stream_version": STREAM_VERSION}
    out_dir, staging = _prepare_out_dir(out_dir)
    total = sum(t.nbytes for t in tensors)
    bar = _Progress(total, _progress_enabled(progress), "fastinit materialize")
    writer = _Writer(chunk_bytes)
    done = []
    try:
        for name, group in files:
            _write_file(os.path.join(staging, name), safetensors_header(group, metadata),
                        group, writer, chunk_bytes, backend, bar)
        if len(files) > 1:
            index = {"metadata": {"total_size": total},
                     "weight_map": {t.name: name for name, group in files for t in group}}
            path = os.path.join(staging, INDEX_NAME)
            with open(path, "w", encoding="utf-8") as f:
                json.dump(index, f, indent=2)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
        names = [name for name, _ in files] + ([INDEX_NAME] if len(files) > 1 else [])
        for name in names:
            os.replace(os.path.join(staging, name), os.path.join(out_dir, name))
            done.append(os.path.join(out_dir, name))
        _fsync_dir(out_dir)
    finally:
        writer.close()
        bar.close()
        shutil.rmtree(staging, ignore_errors=True)
    return done


def materialize_npy(initializer, shape, path, *, dtype="float32", seed=None, name=None,
                    stream=None, chunk_bytes=DEFAULT_CHUNK_BYTES, backend="auto", progress=False):
    """Write one tensor to a ``.npy`` file, chunk by chunk, atomically.

    The stream is ``stream``, else :func:`~fastinit.sharding.name_stream` of
    ``name``, else 0. A seeded initializer given by name or config takes
    ``seed``. The file is written next to ``path`` under a temporary name,
    ``fsync``-ed and renamed. bfloat16 has no ``.npy`` type and is refused.

    Examples
    --------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "w.npy")
    >>> _ = materialize_npy("glorot_uniform", (5, 3), p, seed=1, name="w")
    >>> import fastinit.initializers as fi
    >>> bool(np.array_equal(np.load(p), fi.GlorotUniform(seed=1)((5, 3), stream=sharding.name_stream("w"))))
    True
    """
    from . import _region
    from .initializers import base, get

    init = get(initializer)
    if isinstance(initializer, (str, dict)) and isinstance(init, base.SeededInitializer) \
            and seed is not None:
        init = type(init).from_config({**init.get_config(), "seed": seed})
    shape = _region.normalize_shape(shape)
    if getattr(dtype, "name", dtype) == "bfloat16":
        raise ValueError("The .npy format has no bfloat16 type; use safetensors "
                         "(materialize) or float32. Received: dtype='bfloat16'")
    dtype = base.resolve_dtype(dtype, getattr(init, "dtype_kind", "any"))
    if stream is None:
        stream = 0 if name is None else sharding.name_stream(name)
    t = TensorSpec(name or os.path.basename(os.fspath(path)), shape, dtype, init, stream)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}{STAGING_PREFIX}"
                                  f"{os.getpid()}-{secrets.token_hex(4)}")
    header = _npy_header(shape, dtype)
    chunk_bytes = max(4096, int(chunk_bytes) - int(chunk_bytes) % 8)
    writer = _Writer(chunk_bytes)
    bar = _Progress(t.nbytes, bool(progress), "fastinit materialize")
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as exc:
            raise type(exc)(exc.errno, f"Cannot write in {directory!r}: {exc.strerror}. "
                                       "Nothing was written.") from None
        try:
            writer.write(fd, header)
            _fill_tensor(t, fd, writer, chunk_bytes, backend, bar)
            writer.drain()
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(directory)
    finally:
        writer.close()
        bar.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _npy_header(shape, dtype):
    import io
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        f, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
            "shape": tuple(shape)})
    return f.getvalue()


# -- command line -------------------------------------------------------------------------


def add_arguments(parser):
    """The options of ``fastinit materialize``."""
    parser.add_argument("spec", metavar="SPEC", help="model description (.json or .toml)")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="output directory (created if missing)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the run (default: the spec's 'seed')")
    parser.add_argument("--max-shard-size", default=None,
                        help="bytes of data per safetensors file, e.g. 5GB (default: the "
                             "spec's max_shard_size, else one file)")
    parser.add_argument("--format", choices=("safetensors", "npy"), default="safetensors",
                        help="safetensors files (default) or one NAME.npy per tensor")
    parser.add_argument("--chunk-mb", type=float, default=DEFAULT_CHUNK_BYTES / 2**20,
                        help="buffer size in MiB (default %(default)g)")
    parser.add_argument("--backend", choices=("auto", "numba", "numpy"), default="auto")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_from_args(args):
    """Run ``fastinit materialize`` from parsed arguments; returns the exit status."""
    import signal

    def _terminate(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _terminate)
    chunk = int(args.chunk_mb * 2**20)
    progress = False if args.no_progress else None
    try:
        if args.format == "npy":
            tensors, options = parse_spec(args.spec, args.seed)
            os.makedirs(args.out_dir, exist_ok=True)
            paths = [materialize_npy(t.initializer, t.shape,
                                     os.path.join(args.out_dir, f"{t.name}.npy"),
                                     dtype=t.dtype, stream=t.stream, chunk_bytes=chunk,
                                     backend=args.backend, progress=progress)
                     for t in tensors]
        else:
            paths = materialize(args.spec, args.out_dir, args.seed,
                                max_shard_size=args.max_shard_size, chunk_bytes=chunk,
                                backend=args.backend, progress=progress)
    except (ValueError, TypeError, OSError) as exc:
        print(f"fastinit materialize: error: {exc}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    for p in paths:
        print(p)
    return 0
