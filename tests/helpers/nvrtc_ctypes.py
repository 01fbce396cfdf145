"""NVRTC through ctypes, with the interface of CuPy's binding (``cupy_backends.cuda.libs.nvrtc``).

NVRTC comes from its pip package (``nvidia-cuda-nvrtc``, in the ``test``
extra on Linux) and runs without a GPU or a driver. With this, the compile
pipeline of ``fastinit.backends.cuda._compile`` runs where CuPy is absent,
and the stand-in CuPy (``fake_cupy``) compiles the real sources.
"""

import ctypes
import ctypes.util
import glob
import os


class NVRTCError(RuntimeError):
    def __init__(self, status, message):
        super().__init__(f"{message} ({status})")
        self.status = status


def find_library():
    """The loaded NVRTC library, or None when it is not installed."""
    candidates = []
    try:
        import nvidia
        for root in nvidia.__path__:
            candidates += sorted(glob.glob(os.path.join(root, "*", "lib", "libnvrtc.so*")))
            candidates += sorted(glob.glob(os.path.join(root, "*", "bin", "nvrtc64_*.dll")))
    except ImportError:
        pass
    found = ctypes.util.find_library("nvrtc")
    if found:
        candidates.append(found)
    for path in candidates:
        if "builtins" in os.path.basename(path):
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        lib.nvrtcGetErrorString.restype = ctypes.c_char_p
        return lib
    return None


class Binding:
    """``createProgram``, ``compileProgram``, ``getPTX``... as CuPy's binding has them."""

    NVRTCError = NVRTCError

    def __init__(self, lib):
        self.lib = lib

    def _check(self, status):
        if status != 0:
            raise NVRTCError(status, self.lib.nvrtcGetErrorString(status).decode())

    def getVersion(self):  # noqa: N802 - CuPy's names
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._check(self.lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)))
        return major.value, minor.value

    def getSupportedArchs(self):  # noqa: N802
        count = ctypes.c_int()
        self._check(self.lib.nvrtcGetNumSupportedArchs(ctypes.byref(count)))
        archs = (ctypes.c_int * count.value)()
        self._check(self.lib.nvrtcGetSupportedArchs(archs))
        return tuple(archs)

    def createProgram(self, src, name, headers, include_names):  # noqa: N802
        assert not headers and not include_names
        prog = ctypes.c_void_p()
        self._check(self.lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(),
                                                name.encode(), 0, None, None))
        return prog.value

    def compileProgram(self, prog, options):  # noqa: N802
        encoded = [o.encode() for o in options]
        array = (ctypes.c_char_p * len(encoded))(*encoded)
        self._check(self.lib.nvrtcCompileProgram(ctypes.c_void_p(prog), len(encoded), array))

    def _get(self, prog, what):
        size = ctypes.c_size_t()
        self._check(getattr(self.lib, f"nvrtcGet{what}Size")(ctypes.c_void_p(prog),
                                                             ctypes.byref(size)))
        buffer = ctypes.create_string_buffer(size.value)
        self._check(getattr(self.lib, f"nvrtcGet{what}")(ctypes.c_void_p(prog), buffer))
        return buffer.raw

    def getPTX(self, prog):  # noqa: N802
        return self._get(prog, "PTX").rstrip(b"\0")

    def getCUBIN(self, prog):  # noqa: N802
        return self._get(prog, "CUBIN")

    def getProgramLog(self, prog):  # noqa: N802
        return self._get(prog, "ProgramLog").rstrip(b"\0").decode(errors="replace")

    def destroyProgram(self, prog):  # noqa: N802
        handle = ctypes.c_void_p(prog)
        self._check(self.lib.nvrtcDestroyProgram(ctypes.byref(handle)))


_binding = []


def binding():
    """A :class:`Binding` of the installed NVRTC, or None."""
    if not _binding:
        lib = find_library()
        _binding.append(Binding(lib) if lib is not None else None)
    return _binding[0]
