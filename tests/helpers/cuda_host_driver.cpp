// Host driver for fastinit/kernels/fastinit_stream.cuh (tests/test_cuda_header_host.py).
//
// Compiled with the system C++ compiler (-ffp-contract=off, no fast-math) so that
// CI, which has no GPU, runs the exact per-element code of the CUDA kernels and
// compares it with the NumPy backend bit for bit. Reads one command per line on
// stdin and writes raw little-endian results to stdout:
//
//   fill KIND OUT K0 K1 PROPOSAL N_RUNS RUN_LENGTH ORDER MISALIGN P0..P8 [RUN_STARTS...]
//       -> N_RUNS * RUN_LENGTH output elements (float16/bfloat16 as uint16 bits).
//       P0..P8 are the params (loc scale lo hi alpha beta rate m2 sign) as hex bits of
//       the working precision. ORDER 0 runs the items in order, -1 in reverse, G > 0 as a
//       grid-stride loop over G "threads" (as a CUDA grid of G threads would).
//       MISALIGN 1 offsets the output by one element (the unaligned store path).
//   philox C0 C1 C2 C3 K0 K1          -> 4 words
//   raw K0 K1 START N ROUND           -> N words
//   round16 N   (then 4N bytes of float32 bits) -> N float16 bits, then N bfloat16 bits
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "fastinit_stream.cuh"

#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "float arithmetic must round each operation to its own type (FLT_EVAL_METHOD == 0)"
#endif
#if defined(__FAST_MATH__)
#error "do not build with -ffast-math"
#endif

using namespace fi;

static void write_all(const void *data, size_t bytes) {
  if (bytes && fwrite(data, 1, bytes, stdout) != bytes) exit(2);
}

template <typename F> static F param(const char *hex);
template <> float param<float>(const char *hex) { return bits_f32((u32)strtoull(hex, 0, 16)); }
template <> double param<double>(const char *hex) { return bits_f64(strtoull(hex, 0, 16)); }

template <int KIND, int OUT>
static void run_fill(u32 k0, u32 k1, int proposal, u64 n_runs, u64 run_length, long long order,
                     int misalign, char **tok) {
  typedef typename Store<OUT>::F F;
  typedef typename Store<OUT>::T T;
  Params<F> P;
  F *fields[9] = {&P.loc, &P.scale, &P.lo, &P.hi, &P.alpha, &P.beta, &P.rate, &P.m2, &P.sign};
  for (int i = 0; i < 9; ++i) *fields[i] = param<F>(tok[i]);
  std::vector<i64> starts(n_runs);
  for (u64 r = 0; r < n_runs; ++r) starts[r] = strtoll(tok[9 + r], 0, 10);
  const u64 n = n_runs * run_length;
  std::vector<T> storage(n + 8);
  // 16-byte aligned base (plus one element when misaligned).
  T *out = storage.data();
  while (((u64)out) & 15) ++out;
  if (misalign) ++out;
  Layout L;
  L.n_runs = n_runs;
  L.run_length = run_length;
  L.start0 = n_runs ? (u64)starts[0] : 0;
  L.run_starts = starts.data();
  L.blocks_per_run = blocks_per_run(n_runs, run_length, L.start0, (u64)Family<F>::LANES);
  const u64 n_items = n_runs * L.blocks_per_run;
  if (order == 0) {
    for (u64 t = 0; t < n_items; ++t) fill_item<KIND, OUT>(out, t, L, k0, k1, proposal, P);
  } else if (order < 0) {
    for (u64 t = n_items; t-- > 0;) fill_item<KIND, OUT>(out, t, L, k0, k1, proposal, P);
  } else {
    const u64 grid = (u64)order;
    for (u64 g = 0; g < grid; ++g)
      for (u64 t = g; t < n_items; t += grid) fill_item<KIND, OUT>(out, t, L, k0, k1, proposal, P);
  }
  write_all(out, n * sizeof(T));
}

typedef void (*FillFn)(u32, u32, int, u64, u64, long long, int, char **);
static const FillFn FILLS[3][4] = {
    {run_fill<UNIFORM, OUT_F32>, run_fill<UNIFORM, OUT_F16>, run_fill<UNIFORM, OUT_BF16>,
     run_fill<UNIFORM, OUT_F64>},
    {run_fill<NORMAL, OUT_F32>, run_fill<NORMAL, OUT_F16>, run_fill<NORMAL, OUT_BF16>,
     run_fill<NORMAL, OUT_F64>},
    {run_fill<TRUNCATED_NORMAL, OUT_F32>, run_fill<TRUNCATED_NORMAL, OUT_F16>,
     run_fill<TRUNCATED_NORMAL, OUT_BF16>, run_fill<TRUNCATED_NORMAL, OUT_F64>},
};

int main() {
  std::vector<char> line(1 << 24);
  while (fgets(line.data(), (int)line.size(), stdin)) {
    std::vector<char *> tok;
    for (char *t = strtok(line.data(), " \t\r\n"); t; t = strtok(0, " \t\r\n")) tok.push_back(t);
    if (tok.empty()) continue;
    const char *cmd = tok[0];
    if (!strcmp(cmd, "fill")) {
      const int kind = atoi(tok[1]), out = atoi(tok[2]);
      const u32 k0 = (u32)strtoul(tok[3], 0, 10), k1 = (u32)strtoul(tok[4], 0, 10);
      const int proposal = atoi(tok[5]);
      const u64 n_runs = strtoull(tok[6], 0, 10), run_length = strtoull(tok[7], 0, 10);
      const long long order = strtoll(tok[8], 0, 10);
      const int misalign = atoi(tok[9]);
      if (kind < 0 || kind > 2 || out < 0 || out > 3 || tok.size() != 19 + n_runs) return 3;
      FILLS[kind][out](k0, k1, proposal, n_runs, run_length, order, misalign, tok.data() + 10);
    } else if (!strcmp(cmd, "philox")) {
      u32 c[6];
      for (int i = 0; i < 6; ++i) c[i] = (u32)strtoul(tok[1 + i], 0, 10);
      philox(c[0], c[1], c[2], c[3], c[4], c[5]);
      write_all(c, 16);
    } else if (!strcmp(cmd, "raw")) {
      const u32 k0 = (u32)strtoul(tok[1], 0, 10), k1 = (u32)strtoul(tok[2], 0, 10);
      const u64 start = strtoull(tok[3], 0, 10), n = strtoull(tok[4], 0, 10);
      const u32 round = (u32)strtoul(tok[5], 0, 10);
      std::vector<u32> out(n + 1);
      const u64 n_items = n ? (start + n - 1) / 4 - start / 4 + 1 : 0;
      for (u64 t = 0; t < n_items; ++t) raw_words_item(out.data(), t, start, n, round, k0, k1);
      write_all(out.data(), n * 4);
    } else if (!strcmp(cmd, "round16")) {
      const u64 n = strtoull(tok[1], 0, 10);
      std::vector<u32> in(n);
      if (fread(in.data(), 4, n, stdin) != n) return 4;
      std::vector<u16> half(n), bf(n);
      for (u64 i = 0; i < n; ++i) {
        half[i] = float16_bits(bits_f32(in[i]));
        bf[i] = bfloat16_bits(bits_f32(in[i]));
      }
      write_all(half.data(), 2 * n);
      write_all(bf.data(), 2 * n);
    } else {
      return 5;
    }
    fflush(stdout);
  }
  return 0;
}
