"""Test backends that hold the fill contract of ``fastinit.backends`` for NumPy outputs,
so that one contract suite runs on every implementation of the stream:

- :class:`HostBackend`: the CUDA per-element code (``fastinit_stream.cuh``)
  compiled as host C++ (``cuda_host_driver.cpp``, ``-ffp-contract=off``): CI's
  check of the GPU math without a GPU;
- :class:`GpuCopyBackend`: the real CUDA kernels, into a device buffer copied back.
"""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

import fastinit

KERNELS = Path(fastinit.__file__).resolve().parent / "backends" / "cuda"
DRIVER = Path(__file__).resolve().parent / "cuda_host_driver.cpp"
OUT_CODES = {"float32": 0, "float16": 1, "bfloat16": 2, "float64": 3}
FLAGS = ("-std=c++14", "-ffp-contract=off", "-fno-fast-math")


def compiler():
    """A C++ compiler (``$CXX``, g++, c++ or clang++), or None."""
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def build_host_driver(directory, opt="-O2"):
    """Compile the host driver; its path, or None without a compiler."""
    cxx = compiler()
    if cxx is None:
        return None
    exe = Path(directory) / f"cuda_host_driver{opt}"
    cmd = [cxx, opt, *FLAGS, "-Wall", "-Werror", f"-I{KERNELS}", str(DRIVER), "-o", str(exe)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stderr}"
    return exe


class HostBackend:
    """The fill contract of ``fastinit.backends``, computed by the host-compiled header."""

    def __init__(self, exe):
        self.proc = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.order = 0
        self.misalign = 0
        self.calls = 0

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)

    def _ask(self, line, nbytes, payload=b""):
        self.proc.stdin.write(line.encode() + b"\n" + payload)
        self.proc.stdin.flush()
        data = self.proc.stdout.read(nbytes)
        assert len(data) == nbytes, f"driver answered {len(data)} of {nbytes} bytes ({line[:80]})"
        return data

    def fill(self, dist, key, out, run_starts, run_length):
        self.calls += 1
        params = dist.params()
        width = np.uint64 if dist.wide else np.uint32
        hexes = " ".join(f"{int(b):x}" for b in params.view(width))
        starts = " ".join(str(int(s)) for s in np.asarray(run_starts))
        code = OUT_CODES[out.dtype.name]
        line = (f"fill {dist.kind} {code} {key[0]} {key[1]} {dist.proposal} {len(run_starts)} "
                f"{run_length} {self.order} {self.misalign} {hexes} {starts}")
        data = self._ask(line, out.nbytes)
        out.view(np.uint8)[:] = np.frombuffer(data, dtype=np.uint8)

    def philox(self, counter, key):
        words = " ".join(str(w) for w in (*counter, *key))
        return tuple(int(w) for w in np.frombuffer(self._ask(f"philox {words}", 16), np.uint32))

    def raw(self, key, start, n, round_=0):
        return np.frombuffer(self._ask(f"raw {key[0]} {key[1]} {start} {n} {round_}", 4 * n),
                             dtype=np.uint32)

    def round16(self, f32_bits):
        f32_bits = np.ascontiguousarray(f32_bits, dtype=np.uint32)
        n = f32_bits.size
        data = np.frombuffer(self._ask(f"round16 {n}", 4 * n, f32_bits.tobytes()), np.uint16)
        return data[:n], data[n:]


class GpuCopyBackend:
    """The fill contract run by the CUDA kernels, through a device buffer copied back."""

    def __init__(self):
        self.grid = self.block = None

    def fill(self, dist, key, out, run_starts, run_length):
        import cupy

        from fastinit.backends import cuda
        name = out.dtype.name
        device_out = cuda.allocate((out.size,), name)
        cuda.fill(dist, key, device_out, run_starts, run_length, dtype=name, grid=self.grid,
                  block=self.block)
        out.view(np.uint8)[:] = cupy.asnumpy(device_out).view(np.uint8)


def gpu_count():
    """CUDA devices CuPy sees (0 without CuPy, a driver or a device)."""
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # ImportError, CUDARuntimeError
        return 0
