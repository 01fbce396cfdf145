// fastinit random stream, version 1: the per-element math for CUDA and host C++.
//
// This header is the CUDA transcription of fastinit/stream.py (the definition;
// docs/stream.md is the user spec). It compiles two ways:
//   - as CUDA device code under NVRTC (fastinit_fill.cu includes it; compile
//     with --fmad=false -ftz=false -prec-div=true -prec-sqrt=true), and
//   - as plain host C++ (g++ -std=c++14 -ffp-contract=off, no -ffast-math), so
//     that CI without a GPU checks it bit for bit against the NumPy backend
//     (tests/backends/test_cuda_header_host.py).
// Only + - * / and sqrt are used, each one IEEE operation rounded to nearest
// even, in the order of stream.py (C's precedence and left-to-right
// associativity are Python's, so the expressions are copied verbatim).
// Float constants are given by their bit patterns (the tables of docs/stream.md).
//
// The unit of work is an "item": one Philox block of one run of the output
// (fill_item below). Items are independent, so the CUDA grid-stride loop and
// the host loop give the same bits whatever the launch geometry or order.
#ifndef FASTINIT_STREAM_CUH
#define FASTINIT_STREAM_CUH

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define FI_CUDA 1
#define FI_FN __device__ __forceinline__
#define FI_UNROLL _Pragma("unroll")
#else
#include <math.h>
#include <string.h>
#include <stdint.h>
#define FI_FN inline
#define FI_UNROLL
#endif

namespace fi {

typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned long long u64;
typedef int i32;
typedef long long i64;

static_assert(sizeof(u32) == 4 && sizeof(u64) == 8 && sizeof(u16) == 2, "integer widths");

// -- stream constants (fastinit/stream.py) ------------------------------------------
enum { STREAM_VERSION = 1, PHILOX_ROUNDS = 10, LANES_F32 = 4, LANES_F64 = 2,
       MAX_ATTEMPTS = 256 };
enum { UNIFORM = 0, NORMAL = 1, TRUNCATED_NORMAL = 2 };
enum { PROPOSAL_NORMAL = 0, PROPOSAL_UNIFORM = 1, PROPOSAL_EXPONENTIAL = 2 };
// Output kinds: the stored type (float16 and bfloat16 are stored as u16 bits).
enum { OUT_F32 = 0, OUT_F16 = 1, OUT_BF16 = 2, OUT_F64 = 3 };

#define FI_PHILOX_M0 0xD2511F53u
#define FI_PHILOX_M1 0xCD9E8D57u
#define FI_PHILOX_W0 0x9E3779B9u
#define FI_PHILOX_W1 0xBB67AE85u

// -- bit casts -------------------------------------------------------------------------
FI_FN u32 f32_bits(float x) {
#ifdef FI_CUDA
  return __float_as_uint(x);
#else
  u32 b; memcpy(&b, &x, 4); return b;
#endif
}
FI_FN float bits_f32(u32 b) {
#ifdef FI_CUDA
  return __uint_as_float(b);
#else
  float x; memcpy(&x, &b, 4); return x;
#endif
}
FI_FN u64 f64_bits(double x) {
#ifdef FI_CUDA
  return (u64)__double_as_longlong(x);
#else
  u64 b; memcpy(&b, &x, 8); return b;
#endif
}
FI_FN double bits_f64(u64 b) {
#ifdef FI_CUDA
  return __longlong_as_double((i64)b);
#else
  double x; memcpy(&x, &b, 8); return x;
#endif
}

// Correctly rounded square roots (device: the IEEE intrinsics, whatever the flags).
FI_FN float sqrt_f32(float x) {
#ifdef FI_CUDA
  return __fsqrt_rn(x);
#else
  return sqrtf(x);
#endif
}
FI_FN double sqrt_f64(double x) {
#ifdef FI_CUDA
  return __dsqrt_rn(x);
#else
  return sqrt(x);
#endif
}

// -- Philox4x32-10 ---------------------------------------------------------------------
// Round keys: (k0 + r*W0, k1 + r*W1) mod 2**32 (stream.key_schedule).
FI_FN void philox(u32 &c0, u32 &c1, u32 &c2, u32 &c3, u32 k0, u32 k1) {
FI_UNROLL
  for (int r = 0; r < PHILOX_ROUNDS; ++r) {
#ifdef FI_CUDA
    u32 hi0 = __umulhi(FI_PHILOX_M0, c0), lo0 = FI_PHILOX_M0 * c0;
    u32 hi1 = __umulhi(FI_PHILOX_M1, c2), lo1 = FI_PHILOX_M1 * c2;
#else
    u64 p0 = (u64)FI_PHILOX_M0 * c0, p1 = (u64)FI_PHILOX_M1 * c2;
    u32 hi0 = (u32)(p0 >> 32), lo0 = (u32)p0, hi1 = (u32)(p1 >> 32), lo1 = (u32)p1;
#endif
    u32 n0 = hi1 ^ c1 ^ k0;
    u32 n2 = hi0 ^ c3 ^ k1;
    c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
    k0 += FI_PHILOX_W0;
    k1 += FI_PHILOX_W1;
  }
}

// The four words of round `round` of block `b` (counter (lo32(b), hi32(b), round, 0)).
struct Words { u32 w[4]; };
FI_FN Words block_words(u64 b, u32 round, u32 k0, u32 k1) {
  Words r;
  r.w[0] = (u32)b; r.w[1] = (u32)(b >> 32); r.w[2] = round; r.w[3] = 0u;
  philox(r.w[0], r.w[1], r.w[2], r.w[3], k0, k1);
  return r;
}

// -- bits to floats: f32 family ------------------------------------------------------
FI_FN float uniform_f32(u32 w) {
  return (float)(w >> 8) * bits_f32(0x33800000u);  // 2**-24
}

FI_FN float log_of_uniform_f32(u32 w) {
  const u32 bits = f32_bits((float)(w | 1u));  // the one rounding conversion (RNE)
  const u32 mantissa = (bits & 0x007FFFFFu) | 0x3F800000u;
  const u32 big = mantissa > 0x3FB504F3u ? 1u : 0u;  // > sqrt(2), on the bits
  const float f = bits_f32(mantissa - (big << 23));
  const i32 e = (i32)(bits >> 23) - 159 + (i32)big;
  const float one = 1.0f, two = 2.0f, half = 0.5f;
  const float lg1 = bits_f32(0x3F2AAAAAu), lg2 = bits_f32(0x3ECCCE13u),
              lg3 = bits_f32(0x3E91E9EEu), lg4 = bits_f32(0x3E789E26u);
  const float ln2_hi = bits_f32(0x3F317180u), ln2_lo = bits_f32(0x3717F7D1u);
  const float t = f - one;
  const float s = t / (two + t);
  const float z = s * s;
  const float w2 = z * z;
  const float r = w2 * (lg2 + w2 * lg4) + z * (lg1 + w2 * lg3);
  const float hfsq = half * t * t;
  const float q = (float)e;
  return s * (hfsq + r) + q * ln2_lo - hfsq + t + q * ln2_hi;
}

struct CosSin32 { float c, s; };

FI_FN CosSin32 cos_sin_f32(u32 w) {
  const u32 octant = w >> 29;
  const u32 odd = octant & 1u;
  const u32 frac = (((w >> 5) & 0x00FFFFFFu) ^ (odd * 0x00FFFFFFu)) + odd;
  const float x = (float)frac * bits_f32(0x33800000u) * bits_f32(0x3F490FDBu);  // 2**-24, pi/4
  // _sin_cos_poly_f32
  const float z = x * x;
  const float s3 = bits_f32(0xB94CA1F9u), s2 = bits_f32(0x3C08839Eu), s1 = bits_f32(0xBE2AAAA3u);
  const float c3 = bits_f32(0x37CCF5CEu), c2 = bits_f32(0xBAB6061Au), c1 = bits_f32(0x3D2AAAA5u);
  const float sin = ((s3 * z + s2) * z + s1) * z * x + x;
  const float cos = ((c3 * z + c2) * z + c1) * z * z - 0.5f * z + 1.0f;
  // _octant_cos_sin_f32: select by mask, flip sign bits
  const u32 swap = (((octant + 1u) >> 1) & 1u) * 0xFFFFFFFFu;
  const u32 sb = f32_bits(sin), cb = f32_bits(cos);
  CosSin32 out;
  out.c = bits_f32(((sb & swap) | (cb & ~swap)) ^ (((octant + 2u) & 4u) << 29));
  out.s = bits_f32(((cb & swap) | (sb & ~swap)) ^ ((octant & 4u) << 29));
  return out;
}

struct Pair32 { float a, b; };

FI_FN Pair32 box_muller_f32(u32 w_radius, u32 w_angle) {
  const float r = sqrt_f32(0.0f - 2.0f * log_of_uniform_f32(w_radius));
  const CosSin32 cs = cos_sin_f32(w_angle);
  Pair32 out;
  out.a = r * cs.c;
  out.b = r * cs.s;
  return out;
}

// -- bits to floats: f64 family ------------------------------------------------------
FI_FN double uniform_f64(u32 hi, u32 lo) {
  const u64 m = ((u64)(hi >> 5) << 26) | (u64)(lo >> 6);
  return (double)(i64)m * bits_f64(0x3CA0000000000000ull);  // 2**-53
}

FI_FN double log_of_uniform_f64(u32 hi, u32 lo) {
  const u64 m = ((u64)(hi & 0x7FFFFFFFu) << 32) | (u64)lo | 1ull;
  const u64 bits = f64_bits((double)(i64)m);  // RNE
  const u64 mantissa = (bits & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull;
  const u64 big = mantissa > 0x3FF6A09E667F3BCDull ? 1ull : 0ull;
  const double f = bits_f64(mantissa - (big << 52));
  const i64 e = (i64)(bits >> 52) - 1086 + (i64)big;
  const double lg1 = bits_f64(0x3FE5555555555593ull), lg2 = bits_f64(0x3FD999999997FA04ull),
               lg3 = bits_f64(0x3FD2492494229359ull), lg4 = bits_f64(0x3FCC71C51D8E78AFull),
               lg5 = bits_f64(0x3FC7466496CB03DEull), lg6 = bits_f64(0x3FC39A09D078C69Full),
               lg7 = bits_f64(0x3FC2F112DF3E5244ull);
  const double ln2_hi = bits_f64(0x3FE62E42FEE00000ull), ln2_lo = bits_f64(0x3DEA39EF35793C76ull);
  const double t = f - 1.0;
  const double s = t / (2.0 + t);
  const double z = s * s;
  const double w2 = z * z;
  const double r = w2 * (lg2 + w2 * (lg4 + w2 * lg6)) + z * (lg1 + w2 * (lg3 + w2 * (lg5 + w2 * lg7)));
  const double hfsq = 0.5 * t * t;
  const double q = (double)e;
  return s * (hfsq + r) + q * ln2_lo - hfsq + t + q * ln2_hi;
}

struct CosSin64 { double c, s; };

FI_FN CosSin64 cos_sin_f64(u32 hi, u32 lo) {
  const u32 octant = hi >> 29;
  const u64 odd = (u64)(octant & 1u);
  u64 frac = ((u64)(hi & 0x1FFFFFFFu) << 21) | (u64)(lo >> 11);
  frac = (frac ^ (odd * 0x0003FFFFFFFFFFFFull)) + odd;  // 2**50 - frac in odd octants
  const double x = (double)(i64)frac * bits_f64(0x3CD0000000000000ull)  // 2**-50
                   * bits_f64(0x3FE921FB54442D18ull);                    // pi/4
  // _sin_cos_poly_f64
  const double z = x * x;
  const double s6 = bits_f64(0x3DE5D8FD1FD19CCDull), s5 = bits_f64(0xBE5AE5E5A9291F5Dull),
               s4 = bits_f64(0x3EC71DE3567D48A1ull), s3 = bits_f64(0xBF2A01A019BFDF03ull),
               s2 = bits_f64(0x3F8111111110F7D0ull), s1 = bits_f64(0xBFC5555555555548ull);
  const double c6 = bits_f64(0xBDA8FA49A0861A9Bull), c5 = bits_f64(0x3E21EE9D7B4E3F05ull),
               c4 = bits_f64(0xBE927E4F7EAC4BC6ull), c3 = bits_f64(0x3EFA01A019C844F5ull),
               c2 = bits_f64(0xBF56C16C16C14F91ull), c1 = bits_f64(0x3FA555555555554Bull);
  const double sin = x + (x * z) * (((((s6 * z + s5) * z + s4) * z + s3) * z + s2) * z + s1);
  const double cos = (1.0 - 0.5 * z) + (z * z) * (((((c6 * z + c5) * z + c4) * z + c3) * z
                                                   + c2) * z + c1);
  // _octant_cos_sin_f64
  const u64 swap = (u64)(((octant + 1u) >> 1) & 1u) * 0xFFFFFFFFFFFFFFFFull;
  const u64 sb = f64_bits(sin), cb = f64_bits(cos);
  CosSin64 out;
  out.c = bits_f64(((sb & swap) | (cb & ~swap)) ^ ((u64)((octant + 2u) & 4u) << 61));
  out.s = bits_f64(((cb & swap) | (sb & ~swap)) ^ ((u64)(octant & 4u) << 61));
  return out;
}

struct Pair64 { double a, b; };

FI_FN Pair64 box_muller_f64(u32 r_hi, u32 r_lo, u32 a_hi, u32 a_lo) {
  const double r = sqrt_f64(0.0 - 2.0 * log_of_uniform_f64(r_hi, r_lo));
  const CosSin64 cs = cos_sin_f64(a_hi, a_lo);
  Pair64 out;
  out.a = r * cs.c;
  out.b = r * cs.s;
  return out;
}

// -- the two families behind one interface ---------------------------------------------
// Family<F>::LANES values per Philox block; lane j of words A:
//   uniform(A, j), log_u(A, j), normal(A, j) (Box-Muller lane j; pairs (0,1), (2,3) in f32).
template <typename F> struct Family;

template <> struct Family<float> {
  enum { LANES = LANES_F32 };
  FI_FN static float uniform(const Words &A, int j) { return uniform_f32(A.w[j]); }
  FI_FN static float log_u(const Words &A, int j) { return log_of_uniform_f32(A.w[j]); }
  FI_FN static float normal(const Words &A, int j) {
    const Pair32 p = box_muller_f32(A.w[j & 2], A.w[(j & 2) + 1]);
    return (j & 1) ? p.b : p.a;
  }
  FI_FN static void uniform_lanes(const Words &A, float z[4]) {
    z[0] = uniform_f32(A.w[0]); z[1] = uniform_f32(A.w[1]);
    z[2] = uniform_f32(A.w[2]); z[3] = uniform_f32(A.w[3]);
  }
  FI_FN static void normal_lanes(const Words &A, float z[4]) {
    const Pair32 p = box_muller_f32(A.w[0], A.w[1]);
    const Pair32 q = box_muller_f32(A.w[2], A.w[3]);
    z[0] = p.a; z[1] = p.b; z[2] = q.a; z[3] = q.b;
  }
};

template <> struct Family<double> {
  enum { LANES = LANES_F64 };
  FI_FN static double uniform(const Words &A, int j) { return uniform_f64(A.w[2 * j], A.w[2 * j + 1]); }
  FI_FN static double log_u(const Words &A, int j) {
    return log_of_uniform_f64(A.w[2 * j], A.w[2 * j + 1]);
  }
  FI_FN static double normal(const Words &A, int j) {
    const Pair64 p = box_muller_f64(A.w[0], A.w[1], A.w[2], A.w[3]);
    return j ? p.b : p.a;
  }
  FI_FN static void uniform_lanes(const Words &A, double z[2]) {
    z[0] = uniform_f64(A.w[0], A.w[1]); z[1] = uniform_f64(A.w[2], A.w[3]);
  }
  FI_FN static void normal_lanes(const Words &A, double z[2]) {
    const Pair64 p = box_muller_f64(A.w[0], A.w[1], A.w[2], A.w[3]);
    z[0] = p.a; z[1] = p.b;
  }
};

// Distribution parameters in the working precision (backends.Distribution.params order).
template <typename F> struct Params {
  F loc, scale, lo, hi, alpha, beta, rate, m2, sign;
};

// -- truncated normal: one attempt (stream.truncated_normal_candidate) ---------------
template <typename F>
FI_FN F candidate(int proposal, F z_normal, F u1, F log_u1, F log_u2, const Params<F> &P,
                  bool &ok) {
  const F zero = (F)0, two = (F)2;
  if (proposal == PROPOSAL_NORMAL) {
    const F z = z_normal;
    ok = (z >= P.alpha) & (z <= P.beta);
    return z;
  }
  if (proposal == PROPOSAL_UNIFORM) {
    const F z = P.alpha + (P.beta - P.alpha) * u1;
    ok = -two * log_u2 >= z * z - P.m2;
    return z;
  }
  const F z = P.alpha + (zero - log_u1) / P.rate;
  const F d = z - P.rate;
  ok = (-two * log_u2 >= d * d) & (z <= P.beta);
  return z;
}

// Attempt `attempt` of lane j of block b (rounds 2k and 2k + 1).
template <typename F>
FI_FN F attempt_lane(u64 b, int j, u32 attempt, u32 k0, u32 k1, int proposal,
                     const Params<F> &P, bool &ok) {
  typedef Family<F> Fam;
  const Words A = block_words(b, 2u * attempt, k0, k1);
  if (proposal == PROPOSAL_NORMAL) {
    return candidate<F>(proposal, Fam::normal(A, j), (F)0, (F)0, (F)0, P, ok);
  }
  const Words B = block_words(b, 2u * attempt + 1u, k0, k1);
  return candidate<F>(proposal, (F)0, Fam::uniform(A, j), Fam::log_u(A, j), Fam::log_u(B, j),
                      P, ok);
}

// -- rounding float32 to 16-bit formats (round to nearest even) ------------------------
// IEEE half bits of float32 x (F. Giesen's float_to_half_fast3_rtne, as numba_kernels).
FI_FN u16 float16_bits(float x) {
  u32 b = f32_bits(x);
  const u32 sign = b & 0x80000000u;
  b ^= sign;
  u32 o;
  if (b >= 0x47800000u) {  // >= 65536 (rounds to inf), inf, nan
    o = b > 0x7F800000u ? 0x7E00u : 0x7C00u;
  } else if (b < 0x38800000u) {  // below the smallest normal half: the FPU rounds
    o = f32_bits(bits_f32(b) + 0.5f) - 0x3F000000u;
  } else {
    const u32 odd = (b >> 13) & 1u;
    o = (b + 0xC8000FFFu + odd) >> 13;
  }
  return (u16)(o | (sign >> 16));
}

FI_FN u16 bfloat16_bits(float x) {
  const u32 b = f32_bits(x);
  return (u16)((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
}

// -- output stage ------------------------------------------------------------------------
template <typename F>
FI_FN F output_value(F z, const Params<F> &P) {
  F x = P.loc + P.scale * (P.sign * z);
  x = x < P.lo ? P.lo : x;  // keeps x when equal to a bound (-0.0 stays -0.0)
  x = x > P.hi ? P.hi : x;
  return x;
}

template <int OUT> struct Store;
template <> struct Store<OUT_F32> {
  typedef float F; typedef float T;
  enum { VEC_BYTES = 16 };
  FI_FN static T convert(float x) { return x; }
  FI_FN static void store_vec(T *dst, const T v[4]) {
#ifdef FI_CUDA
    asm volatile("st.v4.f32 [%0], {%1, %2, %3, %4};" ::"l"(dst), "f"(v[0]), "f"(v[1]),
                 "f"(v[2]), "f"(v[3]) : "memory");
#else
    dst[0] = v[0]; dst[1] = v[1]; dst[2] = v[2]; dst[3] = v[3];
#endif
  }
};
FI_FN void store_vec_u16(u16 *dst, const u16 v[4]) {
#ifdef FI_CUDA
  asm volatile("st.v4.u16 [%0], {%1, %2, %3, %4};" ::"l"(dst), "h"(v[0]), "h"(v[1]),
               "h"(v[2]), "h"(v[3]) : "memory");
#else
  dst[0] = v[0]; dst[1] = v[1]; dst[2] = v[2]; dst[3] = v[3];
#endif
}
template <> struct Store<OUT_F16> {
  typedef float F; typedef u16 T;
  enum { VEC_BYTES = 8 };
  FI_FN static T convert(float x) { return float16_bits(x); }
  FI_FN static void store_vec(T *dst, const T v[4]) { store_vec_u16(dst, v); }
};
template <> struct Store<OUT_BF16> {
  typedef float F; typedef u16 T;
  enum { VEC_BYTES = 8 };
  FI_FN static T convert(float x) { return bfloat16_bits(x); }
  FI_FN static void store_vec(T *dst, const T v[4]) { store_vec_u16(dst, v); }
};
template <> struct Store<OUT_F64> {
  typedef double F; typedef double T;
  enum { VEC_BYTES = 16 };
  FI_FN static T convert(double x) { return x; }
  FI_FN static void store_vec(T *dst, const T v[2]) {
#ifdef FI_CUDA
    asm volatile("st.v2.f64 [%0], {%1, %2};" ::"l"(dst), "d"(v[0]), "d"(v[1]) : "memory");
#else
    dst[0] = v[0]; dst[1] = v[1];
#endif
  }
};

// Where the items of a fill lie: `out` holds n_runs runs of run_length consecutive
// elements of the global tensor, run r starting at flat index run_starts[r] (start0
// when n_runs == 1). Each run is covered by blocks_per_run items (Philox blocks), item
// t of run r being block run_starts[r] / LANES + t; lanes outside the run are skipped.
struct Layout {
  u64 n_runs, run_length, blocks_per_run, start0;
  const i64 *run_starts;
};

// Blocks per run: exact for one run, an upper bound (any alignment) for several.
FI_FN u64 blocks_per_run(u64 n_runs, u64 run_length, u64 start0, u64 lanes) {
  if (run_length == 0) return 0;
  if (n_runs == 1) return (start0 + run_length - 1) / lanes - start0 / lanes + 1;
  return (run_length + lanes - 2) / lanes + 1;
}

// -- one item: every lane of one Philox block of one run ------------------------------
template <int KIND, int OUT>
FI_FN void fill_item(typename Store<OUT>::T *out, u64 item, const Layout &L, u32 k0, u32 k1,
                     int proposal, const Params<typename Store<OUT>::F> &P) {
  typedef typename Store<OUT>::F F;
  typedef typename Store<OUT>::T T;
  typedef Family<F> Fam;
  const u64 lanes = (u64)Fam::LANES;
  u64 r = 0, k = item;
  if (L.n_runs > 1) {
    r = item / L.blocks_per_run;
    k = item - r * L.blocks_per_run;
  }
  const u64 s = L.n_runs > 1 ? (u64)L.run_starts[r] : L.start0;
  const u64 b = s / lanes + k;
  const u64 p0 = b * lanes;      // flat index of lane 0
  const u64 end = s + L.run_length;
  if (p0 >= end) return;         // past the run (several runs: the bound is loose)
  const u64 base = r * L.run_length;  // output position of the run's first element

  F z[Fam::LANES];
  bool ok[Fam::LANES];
  const Words A = block_words(b, 0u, k0, k1);
  if (KIND == UNIFORM) {
    Fam::uniform_lanes(A, z);
  } else if (KIND == NORMAL) {
    Fam::normal_lanes(A, z);
  } else {
    if (proposal == PROPOSAL_NORMAL) {
      Fam::normal_lanes(A, z);
FI_UNROLL
      for (int j = 0; j < Fam::LANES; ++j) ok[j] = (z[j] >= P.alpha) & (z[j] <= P.beta);
    } else {
      const Words B = block_words(b, 1u, k0, k1);
FI_UNROLL
      for (int j = 0; j < Fam::LANES; ++j) {
        z[j] = candidate<F>(proposal, (F)0, Fam::uniform(A, j), Fam::log_u(A, j),
                            Fam::log_u(B, j), P, ok[j]);
      }
    }
    // Attempts 1, 2, ... of the rejected lanes of the run, each from its own counters.
    // (Unrolled: a constant lane index keeps z[] in registers.)
FI_UNROLL
    for (int j = 0; j < Fam::LANES; ++j) {
      const u64 p = p0 + (u64)j;
      if (ok[j] || p < s || p >= end) continue;
      for (u32 attempt = 1; attempt < (u32)MAX_ATTEMPTS; ++attempt) {
        bool accepted;
        z[j] = attempt_lane<F>(b, j, attempt, k0, k1, proposal, P, accepted);
        if (accepted) break;  // after the last attempt its candidate is kept
      }
    }
  }

  T v[Fam::LANES];
FI_UNROLL
  for (int j = 0; j < Fam::LANES; ++j) v[j] = Store<OUT>::convert(output_value<F>(z[j], P));

  if (p0 >= s && p0 + lanes <= end) {  // the whole block lies in the run
    T *dst = out + (base + (p0 - s));
    if ((((u64)dst) & (u64)(Store<OUT>::VEC_BYTES - 1)) == 0) {  // one vector store
      Store<OUT>::store_vec(dst, v);
    } else {
FI_UNROLL
      for (int j = 0; j < Fam::LANES; ++j) dst[j] = v[j];
    }
    return;
  }
FI_UNROLL
  for (int j = 0; j < Fam::LANES; ++j) {
    const u64 p = p0 + (u64)j;
    if (p >= s && p < end) out[base + (p - s)] = v[j];
  }
}

// -- raw words: word p % 4 of round `round` of block p / 4, for p = start + i ---------
FI_FN void raw_words_item(u32 *out, u64 item, u64 start, u64 n, u32 round, u32 k0, u32 k1) {
  const u64 b = start / 4 + item;
  const u64 p0 = b * 4;
  const Words A = block_words(b, round, k0, k1);
  for (int j = 0; j < 4; ++j) {
    const u64 p = p0 + (u64)j;
    if (p >= start && p < start + n) out[p - start] = A.w[j];
  }
}

}  // namespace fi

#endif  // FASTINIT_STREAM_CUH
