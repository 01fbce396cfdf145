"""The CuPy API fastinit uses, pinned: CuPy 14.2's signatures (the ``cupy`` test extra's pin).

``SIGNATURES`` maps each callable fastinit (or its GPU check) calls to its
parameters as CuPy 14.2 declares them (the first docstring line of a Cython
function, or ``inspect.signature``). The stand-in CuPy implements each with
these parameters (tests/gpu/test_cupy_api.py checks it), and where CuPy is
installed the same test checks that CuPy still declares them. ``ATTRIBUTES``
are the non-callables fastinit reads.
"""

import ast
import importlib
import inspect
import re

_SOLVER = {
    "geqrf_bufferSize": "(intptr_t handle, int m, int n, size_t A, int lda)",
    "geqrf": "(intptr_t handle, int m, int n, size_t A, int lda, size_t tau, size_t work, "
             "int lwork, size_t devInfo)",
    "orgqr_bufferSize": "(intptr_t handle, int m, int n, int k, size_t A, int lda, size_t tau)",
    "orgqr": "(intptr_t handle, int m, int n, int k, size_t A, int lda, size_t tau, "
             "size_t work, int lwork, size_t devInfo)",
    "potrf_bufferSize": "(intptr_t handle, int uplo, int n, size_t A, int lda)",
    "potrf": "(intptr_t handle, int uplo, int n, size_t A, int lda, size_t work, int lwork, "
             "size_t devInfo)",
}
_TRSM = ("(intptr_t handle, int side, int uplo, int trans, int diag, int m, int n, "
         "size_t alpha, size_t Aarray, int lda, size_t Barray, int ldb)")

SIGNATURES = {
    "cupy.ndarray": "(shape, dtype=float, memptr=None, strides=None, order='C')",
    "cupy.ndarray.view": "(self, dtype=None, type=None)",
    "cupy.ndarray.reshape": "(self, *shape, order='C', copy=None)",
    "cupy.ndarray.fill": "(self, value)",
    "cupy.ndarray.get": "(self, stream=None, order='C', out=None, blocking=True)",
    "cupy.ndarray.astype": "(self, dtype, order='K', casting=None, subok=None, copy=True)",
    "cupy.ndarray.__setitem__": "(self, slices, value)",
    "cupy.ndarray.__dlpack__": "(self, *, stream=None, max_version=None, dl_device=None, "
                               "copy=None)",
    "cupy.empty": "(shape, dtype=float, order='C')",
    "cupy.zeros": "(shape, dtype=float, order='C')",
    "cupy.empty_like": "(prototype, dtype=None, order='K', subok=None, shape=None)",
    "cupy.asarray": "(a, dtype=None, order=None, *, copy=None, blocking=False)",
    "cupy.ascontiguousarray": "(a, dtype=None)",
    "cupy.asnumpy": "(a, stream=None, order='C', out=None, *, blocking=True)",
    "cupy.may_share_memory": "(a, b, max_work=None)",
    "cupy.shares_memory": "(a, b, max_work=None)",
    "cupy.moveaxis": "(a, source, destination)",
    "cupy.diagonal": "(a, offset=0, axis1=0, axis2=1)",
    "cupy.where": "(condition, x=None, y=None)",
    "cupy.isfinite": "(x, /, out=None, *, casting='same_kind', dtype=None)",
    "cupy.any": "(a, axis=None, out=None, keepdims=False)",
    "cupy.from_dlpack": "(array, *, device=None, copy=None)",
    "cupy.get_default_memory_pool": "()",
    "cupy.RawModule": "(*, code=None, path=None, options=(), backend='nvrtc', "
                      "translate_cucomplex=False, enable_cooperative_groups=False, "
                      "name_expressions=None, jitify=None)",
    "cupy.RawModule.get_function": "(self, name)",
    "cupy.RawKernel.__call__": "(self, grid, block, args, **kwargs)",
    "cupy.cuda.Device": "(device=None)",
    "cupy.cuda.Device.synchronize": "(self)",
    "cupy.cuda.Stream.synchronize": "(self)",
    "cupy.cuda.Stream.from_external": "(cls, obj)",
    "cupy.cuda.ExternalStream": "(ptr, device_id=-1)",
    "cupy.cuda.Event": "(block=False, disable_timing=False, interprocess=False)",
    "cupy.cuda.Event.record": "(self, stream=None)",
    "cupy.cuda.get_current_stream": "(int device_id=-1)",
    "cupy.cuda.get_elapsed_time": "(start_event, end_event)",
    "cupy.cuda.UnownedMemory": "(intptr_t ptr, size_t size, owner, int device_id=-1)",
    "cupy.cuda.MemoryPointer": "(BaseMemory mem, ptrdiff_t offset)",
    "cupy.cuda.using_allocator": "(allocator=None)",
    "cupy.cuda.set_allocator": "(allocator=None)",
    "cupy.cuda.memory.PythonFunctionAllocator": "(malloc_func, free_func)",
    "cupy.cuda.memory.PythonFunctionAllocator.malloc": "(self, size_t size)",
    "cupy.cuda.memory.MemoryPool.malloc": "(self, size_t size)",
    "cupy.cuda.memory.MemoryPool.used_bytes": "(self)",
    "cupy.cuda.memory.MemoryPool.total_bytes": "(self)",
    "cupy.cuda.memory.MemoryPool.free_all_blocks": "(self, stream=None)",
    "cupy.cuda.runtime.getDeviceCount": "()",
    "cupy.cuda.runtime.deviceGetAttribute": "(int attrib, int device)",
    "cupy.cuda.runtime.memGetInfo": "()",
    "cupy.cuda.runtime.pointerGetAttributes": "(intptr_t ptr)",
    "cupy.cuda.runtime.getDeviceProperties": "(int device)",
    "cupy.cuda.device.get_cusolver_handle": "()",
    "cupy.cuda.device.get_cublas_handle": "()",
    **{f"cupy.cuda.cusolver.{t}{name}": text for t in "sd" for name, text in _SOLVER.items()},
    **{f"cupy.cuda.cublas.{t}trsm": _TRSM for t in "sd"},
    "cupy_backends.cuda.libs.nvrtc.getVersion": "()",
    "cupy_backends.cuda.libs.nvrtc.getSupportedArchs": "()",
    "cupy_backends.cuda.libs.nvrtc.createProgram": "(str src, str name, headers, include_names)",
    "cupy_backends.cuda.libs.nvrtc.compileProgram": "(intptr_t prog, options)",
    "cupy_backends.cuda.libs.nvrtc.getPTX": "(intptr_t prog)",
    "cupy_backends.cuda.libs.nvrtc.getCUBIN": "(intptr_t prog)",
    "cupy_backends.cuda.libs.nvrtc.getProgramLog": "(intptr_t prog)",
    "cupy_backends.cuda.libs.nvrtc.destroyProgram": "(intptr_t prog)",
}

#: Where CuPy's docstring and its behaviour differ: RawModule's first line shows ``code``
#: before ``*``, but ``RawModule(source)`` raises TypeError (0 positional arguments).
KEYWORD_ONLY_IN_FACT = {"cupy.RawModule"}

ATTRIBUTES = {
    "cupy.__version__", "cupy.uint32", "cupy.cuda", "cupy.cuda.runtime", "cupy.cuda.runtime.cudaDevAttrMultiProcessorCount",
    "cupy.cuda.memory.OutOfMemoryError", "cupy.cuda.Device.id",
    "cupy.cuda.Device.compute_capability", "cupy.cuda.Stream",
    "cupy.cuda.runtime.CUDARuntimeError",
    "cupy.cuda.cublas.CUBLAS_FILL_MODE_UPPER", "cupy.cuda.cublas.CUBLAS_SIDE_LEFT",
    "cupy.cuda.cublas.CUBLAS_SIDE_RIGHT", "cupy.cuda.cublas.CUBLAS_OP_N",
    "cupy.cuda.cublas.CUBLAS_OP_T", "cupy.cuda.cublas.CUBLAS_DIAG_NON_UNIT",
}
CUBLAS_CONSTANTS = {"CUBLAS_FILL_MODE_LOWER": 0, "CUBLAS_FILL_MODE_UPPER": 1,
                    "CUBLAS_SIDE_LEFT": 0, "CUBLAS_SIDE_RIGHT": 1, "CUBLAS_OP_N": 0,
                    "CUBLAS_OP_T": 1, "CUBLAS_OP_C": 2, "CUBLAS_DIAG_NON_UNIT": 0,
                    "CUBLAS_DIAG_UNIT": 1}


def _split(text):
    depth, part, parts = 0, "", []
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(part)
            part = ""
        else:
            part += ch
    return [p.strip() for p in parts + [part] if p.strip()]


def _default(text):
    try:
        return repr(eval(text, {"float": float}))  # noqa: S307 - our own table / CuPy's docs
    except Exception:
        return text


def parse(text):
    """``[(name, kind, default repr or None)]`` of a signature text ``(a, b=1, *, c=None)``
    (Cython types before names are dropped; ``self``/``cls`` too)."""
    inner = text[text.index("(") + 1:text.rindex(")")].replace("\\*", "*")
    params, keyword = [], False
    for part in _split(inner):
        if part == "*":
            keyword = True
            continue
        if part == "/":
            continue
        if part.startswith("**"):
            params.append((part[2:], "var_keyword", None))
            continue
        if part.startswith("*"):
            params.append((part[1:], "var_positional", None))
            keyword = True
            continue
        name, _, default = part.partition("=")
        name = name.split(":")[0].split()[-1]
        params.append((name, "keyword" if keyword else "positional",
                       _default(default.strip()) if default else None))
    return [p for p in params if p[0] not in ("self", "cls")]


_KINDS = {inspect.Parameter.POSITIONAL_ONLY: "positional",
          inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional",
          inspect.Parameter.KEYWORD_ONLY: "keyword",
          inspect.Parameter.VAR_POSITIONAL: "var_positional",
          inspect.Parameter.VAR_KEYWORD: "var_keyword"}


def of(obj, docstring=True):
    """The parameters of a callable: CuPy's embedded signature where it has one (the
    first docstring line ``name(...)``; not looked for with ``docstring=False``), else
    ``inspect.signature``."""
    doc = (getattr(obj, "__doc__", None) or "").strip().splitlines() if docstring else []
    if doc and re.match(r"^[\w.]+\(.*\)", doc[0]) and not doc[0].startswith("("):
        return parse(doc[0][doc[0].index("("):])
    signature = inspect.signature(obj)
    return [(p.name, _KINDS[p.kind],
             None if p.default is inspect.Parameter.empty else repr(p.default))
            for p in signature.parameters.values() if p.name not in ("self", "cls")]


def resolve(dotted, root=None):
    """The object named ``dotted`` (``root``: the module standing for ``cupy``)."""
    parts = dotted.split(".")
    if root is not None and parts[0] == "cupy":
        obj, parts = root, parts[1:]
    elif root is not None:  # cupy_backends...: the stand-in keeps them in cupy.extra
        obj, parts = root.extra["cupy_backends.cuda.libs"], parts[3:]
    else:
        for i in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:i]))
                break
            except ImportError:
                continue
        parts = parts[i:]
    for part in parts:
        obj = getattr(obj, part)
    return obj


def from_binary(path, name):
    """The embedded signature of ``name`` read from a Cython extension's file, for CuPy
    bindings that cannot be imported here (cuSOLVER/cuBLAS without their libraries)."""
    with open(path, "rb") as f:
        data = f.read()
    match = re.search(rb"(?<![\w.])" + re.escape(name.encode()) + rb"\(([^()\x00\n]*)\)", data)
    return None if match is None else parse("(" + match.group(1).decode() + ")")


def used_by_fastinit(paths, aliases=("cupy",)):
    """The ``cupy.…`` attribute chains in fastinit's modules (``cupy``, ``self.cupy`` or an
    alias such as ``xp`` as their root), each as ``"cupy.a.b"``."""
    chains = set()
    for path in paths:
        tree = ast.parse(open(path, encoding="utf-8").read())
        inner = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or id(node) in inner:
                continue
            names, current = [], node
            while isinstance(current, ast.Attribute):
                names.append(current.attr)
                current = current.value
            if isinstance(current, ast.Name):
                names.append(current.id)
            names.reverse()
            roots = [i for i, name in enumerate(names) if name in aliases]
            if roots and roots[-1] < len(names) - 1:
                chains.add(".".join(["cupy"] + names[roots[-1] + 1:]))
    return chains
