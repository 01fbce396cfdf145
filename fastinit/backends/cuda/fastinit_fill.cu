// fastinit CUDA kernels: the fill contract of fastinit.backends on the GPU.
//
// Compiled once per device by fastinit.backends.cupy_backend (CuPy RawModule,
// NVRTC) with --fmad=false -ftz=false -prec-div=true -prec-sqrt=true: the
// bit-identity rules of docs/stream.md, section 2. The per-element math is in
// fastinit_stream.cuh, which is also compiled as host C++ by the test suite.
//
// Every kernel is a grid-stride loop over independent items (one Philox block
// of one run each, see fi::fill_item), so what element i gets does not depend
// on the grid size, the block size or the number of SMs.
#include "fastinit_stream.cuh"

#define FI_GRID_STRIDE(n)                                                        \
  for (fi::u64 item = (fi::u64)blockIdx.x * blockDim.x + threadIdx.x; item < (n); \
       item += (fi::u64)gridDim.x * blockDim.x)

// fastinit_fill_<distribution>_<output>(out, n_items, n_runs, run_length, run_starts,
//     start0, blocks_per_run, k0, k1, proposal, loc, scale, lo, hi, alpha, beta, rate,
//     m2, sign): the floats are float for f32/f16/bf16 outputs, double for f64.
#define FI_FILL_KERNEL(NAME, KIND, OUT)                                                    \
  extern "C" __global__ void NAME(                                                          \
      fi::Store<OUT>::T *__restrict__ out, unsigned long long n_items,                     \
      unsigned long long n_runs, unsigned long long run_length,                            \
      const long long *__restrict__ run_starts, unsigned long long start0,                 \
      unsigned long long blocks_per_run, unsigned int k0, unsigned int k1, int proposal,   \
      fi::Store<OUT>::F loc, fi::Store<OUT>::F scale, fi::Store<OUT>::F lo,                \
      fi::Store<OUT>::F hi, fi::Store<OUT>::F alpha, fi::Store<OUT>::F beta,               \
      fi::Store<OUT>::F rate, fi::Store<OUT>::F m2, fi::Store<OUT>::F sign) {              \
    const fi::Layout layout = {n_runs, run_length, blocks_per_run, start0, run_starts};   \
    const fi::Params<fi::Store<OUT>::F> params = {loc, scale, lo, hi, alpha, beta, rate,   \
                                                  m2, sign};                               \
    FI_GRID_STRIDE(n_items) {                                                              \
      fi::fill_item<KIND, OUT>(out, item, layout, k0, k1, proposal, params);               \
    }                                                                                      \
  }

FI_FILL_KERNEL(fastinit_fill_uniform_f32, fi::UNIFORM, fi::OUT_F32)
FI_FILL_KERNEL(fastinit_fill_uniform_f16, fi::UNIFORM, fi::OUT_F16)
FI_FILL_KERNEL(fastinit_fill_uniform_bf16, fi::UNIFORM, fi::OUT_BF16)
FI_FILL_KERNEL(fastinit_fill_uniform_f64, fi::UNIFORM, fi::OUT_F64)
FI_FILL_KERNEL(fastinit_fill_normal_f32, fi::NORMAL, fi::OUT_F32)
FI_FILL_KERNEL(fastinit_fill_normal_f16, fi::NORMAL, fi::OUT_F16)
FI_FILL_KERNEL(fastinit_fill_normal_bf16, fi::NORMAL, fi::OUT_BF16)
FI_FILL_KERNEL(fastinit_fill_normal_f64, fi::NORMAL, fi::OUT_F64)
FI_FILL_KERNEL(fastinit_fill_truncated_normal_f32, fi::TRUNCATED_NORMAL, fi::OUT_F32)
FI_FILL_KERNEL(fastinit_fill_truncated_normal_f16, fi::TRUNCATED_NORMAL, fi::OUT_F16)
FI_FILL_KERNEL(fastinit_fill_truncated_normal_bf16, fi::TRUNCATED_NORMAL, fi::OUT_BF16)
FI_FILL_KERNEL(fastinit_fill_truncated_normal_f64, fi::TRUNCATED_NORMAL, fi::OUT_F64)

// Raw 32-bit words of the stream: out[i] = word (p % 4) of round `round` of block
// p / 4 for p = start + i (n_items = the blocks covering [start, start + n)).
extern "C" __global__ void fastinit_raw_words(unsigned int *__restrict__ out,
                                              unsigned long long n_items,
                                              unsigned long long start, unsigned long long n,
                                              unsigned int round, unsigned int k0,
                                              unsigned int k1) {
  FI_GRID_STRIDE(n_items) { fi::raw_words_item(out, item, start, n, round, k0, k1); }
}

// Philox4x32-10 of arbitrary counters and keys (the known-answer tests):
// out[4i..4i+3] = philox(counters[4i..4i+3], keys[2i], keys[2i+1]).
extern "C" __global__ void fastinit_philox(const unsigned int *__restrict__ counters,
                                           const unsigned int *__restrict__ keys,
                                           unsigned int *__restrict__ out,
                                           unsigned long long n) {
  FI_GRID_STRIDE(n) {
    fi::u32 c0 = counters[4 * item], c1 = counters[4 * item + 1];
    fi::u32 c2 = counters[4 * item + 2], c3 = counters[4 * item + 3];
    fi::philox(c0, c1, c2, c3, keys[2 * item], keys[2 * item + 1]);
    out[4 * item] = c0;
    out[4 * item + 1] = c1;
    out[4 * item + 2] = c2;
    out[4 * item + 3] = c3;
  }
}
