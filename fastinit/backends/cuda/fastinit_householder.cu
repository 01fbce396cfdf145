// Householder vectors of Stewart's method on the GPU (fastinit/_orthogonal_gpu.py).
//
// For each column k of the column-major (m x n) matrix `a` (leading dimension
// lda) holding standard Gaussian values, apply LAPACK larfg's rule to
// x = a[k:, k]: alpha = x[0], beta = -copysign(hypot(alpha, |x[1:]|), alpha),
// tau = (beta - alpha) / beta, x[1:] /= (alpha - beta), x[0] = beta. The same
// formulas, in double precision, as fastinit._orthogonal._reflectors_by_rows on
// the CPU. sign[k] = sign(beta), what R[k, k] would have been (the sign fix).
// Then cuSOLVER's orgqr forms Q from (a, tau).
//
// One block per column (grid-stride over columns); blockDim.x must be
// HOUSEHOLDER_THREADS (a power of two).

#define HOUSEHOLDER_THREADS 256

template <typename T>
__device__ void householder_columns(T* a, long long lda, long long m, long long n,
                                    T* tau, T* sign) {
    __shared__ double partial[HOUSEHOLDER_THREADS];
    __shared__ double scale;
    for (long long k = blockIdx.x; k < n; k += gridDim.x) {
        T* x = a + k * lda;
        double sum = 0.0;  // accumulated in double, as on the CPU
        for (long long i = k + 1 + threadIdx.x; i < m; i += blockDim.x) {
            double v = (double)x[i];
            sum += v * v;
        }
        partial[threadIdx.x] = sum;
        __syncthreads();
        for (int half = blockDim.x / 2; half > 0; half >>= 1) {
            if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
            __syncthreads();
        }
        if (threadIdx.x == 0) {
            double alpha = (double)x[k];
            double xnorm = sqrt(partial[0]);
            double beta = alpha, t = 0.0, s = 1.0;  // a zero vector: H = I
            if (xnorm != 0.0) {
                beta = -copysign(hypot(alpha, xnorm), alpha);
                t = (beta - alpha) / beta;
                s = 1.0 / (alpha - beta);
            }
            x[k] = (T)beta;
            tau[k] = (T)t;
            sign[k] = beta >= 0.0 ? (T)1 : (T)-1;
            scale = s;
        }
        __syncthreads();
        const T factor = (T)scale;
        for (long long i = k + 1 + threadIdx.x; i < m; i += blockDim.x) x[i] *= factor;
        __syncthreads();  // `partial` and `scale` are reused by the next column
    }
}

extern "C" __global__ void fastinit_householder_f32(float* a, long long lda, long long m,
                                                    long long n, float* tau, float* sign) {
    householder_columns<float>(a, lda, m, n, tau, sign);
}

extern "C" __global__ void fastinit_householder_f64(double* a, long long lda, long long m,
                                                    long long n, double* tau, double* sign) {
    householder_columns<double>(a, lda, m, n, tau, sign);
}
