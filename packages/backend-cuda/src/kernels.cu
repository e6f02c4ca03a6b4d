// CUDA kernels of the ptp-ts CUDA backend plug-in.
//
// Arithmetic recipe: every float32 operation is rounded once and explicitly
// (__fadd_rn, __fmul_rn, __fdiv_rn, __fsqrt_rn), so nvcc can never contract a
// multiply and an add into an FMA or reassociate anything. Every reduction is
// a plain loop in index order inside ONE thread; threads and blocks divide
// output elements only. The sequence of float operations that produces an
// output element therefore depends on the reduced length alone, never on M,
// on the launch configuration or on other rows: the ops are batch-invariant
// by construction (spec/backend-cuda.md gives the argument per kernel).
//
// This is the same recipe as the js reference backend (src/backends/js), so
// matmul, rmsnorm, rope, add, embedding and copy agree with js bit for bit;
// exp is computed in double and rounded to float, like js's Math.exp stored
// into a Float32Array (the two exp implementations may differ by an f64 ulp).

#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "kernels.h"

namespace {

__device__ __forceinline__ float mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ float sub(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ float divide(float a, float b) { return __fdiv_rn(a, b); }
// exp in double, rounded to float once (like Math.exp stored into a Float32Array).
__device__ __forceinline__ float expf64(float a) { return (float)exp((double)a); }

inline int ceilDiv(long long a, long long b) { return (int)((a + b - 1) / b); }
inline int launchResult() { return (int)cudaGetLastError(); }

// ---------------------------------------------------------------------------
// GEMM: y[m, n] = sum_k x[m, k] w[n, k]  (y = x W^T, W stored [N, K]).
//
// A block computes a BM x BN tile of y; each thread owns TM x TN outputs
// (rows ty + i * TY, columns tx + j * TX). K is walked in chunks of BK that
// are staged in shared memory, and inside a chunk in increasing k. So every
// output element is, whatever the tile shape: acc = +0; for k = 0 .. K-1 in
// order: acc = acc + x[m, k] * w[n, k] (product rounded, then sum rounded).
// K is never split across threads or blocks; M only decides how many blocks
// there are and which tile shape is used, and all tile shapes run exactly
// this sequence per element.
template <int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
gemmKernel(float* __restrict__ y, const float* __restrict__ x, const float* __restrict__ w, int M, int K, int N) {
  constexpr int TX = BN / TN, TY = BM / TM, NT = TX * TY;
  __shared__ float xs[BM][BK + 1];
  __shared__ float ws[BN][BK + 1];
  const int tid = threadIdx.x;
  const int tx = tid % TX, ty = tid / TX;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;

  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

  for (int k0 = 0; k0 < K; k0 += BK) {
    const int kn = min(BK, K - k0);
    for (int idx = tid; idx < BM * BK; idx += NT) {
      const int r = idx / BK, c = idx % BK, m = m0 + r;
      xs[r][c] = (m < M && c < kn) ? x[(size_t)m * K + k0 + c] : 0.0f;
    }
    for (int idx = tid; idx < BN * BK; idx += NT) {
      const int r = idx / BK, c = idx % BK, n = n0 + r;
      ws[r][c] = (n < N && c < kn) ? w[(size_t)n * K + k0 + c] : 0.0f;
    }
    __syncthreads();
    // Only the kn real k's of the chunk: no padded term is ever added.
    for (int kk = 0; kk < kn; ++kk) {
      float a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) a[i] = xs[ty + i * TY][kk];
#pragma unroll
      for (int j = 0; j < TN; ++j) b[j] = ws[tx + j * TX][kk];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = add(acc[i][j], mul(a[i], b[j]));
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int m = m0 + ty + i * TY;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int n = n0 + tx + j * TX;
      if (n < N) y[(size_t)m * N + n] = acc[i][j];
    }
  }
}

template <int BM, int BN, int BK, int TM, int TN>
int launchGemm(float* y, const float* x, const float* w, int M, int K, int N) {
  dim3 grid(ceilDiv(N, BN), ceilDiv(M, BM));
  gemmKernel<BM, BN, BK, TM, TN><<<grid, (BM / TM) * (BN / TN)>>>(y, x, w, M, K, N);
  return launchResult();
}

// ---------------------------------------------------------------------------
// Row reductions (rmsnorm, softmax): one block per row. The sum over the row
// is a sequential loop in thread 0; elementwise work is spread over threads.

constexpr int ROW_THREADS = 256;

__global__ void rmsnormKernel(float* y, const float* x, const float* __restrict__ g, int D, float eps) {
  __shared__ float scale;
  const size_t row = (size_t)blockIdx.x * D;
  if (threadIdx.x == 0) {
    float ss = 0.0f;
    for (int i = 0; i < D; ++i) ss = add(ss, mul(x[row + i], x[row + i]));
    scale = divide(1.0f, __fsqrt_rn(add(divide(ss, (float)D), eps)));
  }
  __syncthreads();
  const float s = scale;
  for (int i = threadIdx.x; i < D; i += blockDim.x) y[row + i] = mul(g[i], mul(s, x[row + i]));
}

// js's max: `if (v > max) max = v` from -Infinity (NaN never wins). For
// non-NaN values this is the exact maximum, so the tree order is irrelevant.
__device__ float blockMax(float v, float* red) {
  red[threadIdx.x] = v;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) {
      const float o = red[threadIdx.x + stride];
      if (o > red[threadIdx.x]) red[threadIdx.x] = o;
    }
    __syncthreads();
  }
  const float r = red[0];
  __syncthreads();
  return r;
}

__global__ void softmaxKernel(float* x, int N) {
  __shared__ float red[ROW_THREADS];
  __shared__ float total;
  float* row = x + (size_t)blockIdx.x * N;
  float mx = -INFINITY;
  for (int i = threadIdx.x; i < N; i += blockDim.x)
    if (row[i] > mx) mx = row[i];
  mx = blockMax(mx, red);
  for (int i = threadIdx.x; i < N; i += blockDim.x) row[i] = expf64(sub(row[i], mx));
  __syncthreads();
  if (threadIdx.x == 0) {
    float sum = 0.0f;
    for (int i = 0; i < N; ++i) sum = add(sum, row[i]);
    total = sum;
  }
  __syncthreads();
  const float sum = total;
  for (int i = threadIdx.x; i < N; i += blockDim.x) row[i] = divide(row[i], sum);
}

// ---------------------------------------------------------------------------
// Attention: one block per (query head h, row m). Scores of the visible keys
// (each a sequential dot product over the head), their max, exp, a
// sequential sum in key order (thread 0), normalisation, then each output
// dimension i is a sequential sum over the visible keys in key order (one
// thread per i). Invisible keys are never read: they take no part at all.

constexpr int ATT_THREADS = 128;

__global__ void attentionKernel(float* out, const float* __restrict__ q, const float* __restrict__ keys,
                                const float* __restrict__ values, const unsigned char* __restrict__ mask,
                                float* scratch, int M, int nKeys, int nHeads, int nKvHeads, int hs, float sqrtHs) {
  __shared__ float red[ATT_THREADS];
  __shared__ float total;
  const int h = blockIdx.x, m = blockIdx.y;
  const int kvh = h / (nHeads / nKvHeads);
  const size_t width = (size_t)nHeads * hs, kvWidth = (size_t)nKvHeads * hs;
  const float* qh = q + (size_t)m * width + (size_t)h * hs;
  const float* kbase = keys + (size_t)kvh * hs;
  const float* vbase = values + (size_t)kvh * hs;
  float* sc = scratch + ((size_t)m * nHeads + h) * nKeys;
  const unsigned char* mrow = mask ? mask + (size_t)m * nKeys : nullptr;
  const int lastCausal = nKeys - M + m;
#define PTP_VISIBLE(j) (mrow ? mrow[j] != 0 : (j) <= lastCausal)

  float mx = -INFINITY;
  for (int j = threadIdx.x; j < nKeys; j += blockDim.x) {
    if (!PTP_VISIBLE(j)) continue;
    const float* kj = kbase + (size_t)j * kvWidth;
    float s = 0.0f;
    for (int i = 0; i < hs; ++i) s = add(s, mul(qh[i], kj[i]));
    s = divide(s, sqrtHs);
    sc[j] = s;
    if (s > mx) mx = s;
  }
  mx = blockMax(mx, red);
  for (int j = threadIdx.x; j < nKeys; j += blockDim.x)
    if (PTP_VISIBLE(j)) sc[j] = expf64(sub(sc[j], mx));
  __syncthreads();
  if (threadIdx.x == 0) {
    float sum = 0.0f;
    for (int j = 0; j < nKeys; ++j)
      if (PTP_VISIBLE(j)) sum = add(sum, sc[j]);
    total = sum;
  }
  __syncthreads();
  const float sum = total;
  for (int j = threadIdx.x; j < nKeys; j += blockDim.x)
    if (PTP_VISIBLE(j)) sc[j] = divide(sc[j], sum);
  __syncthreads();
  float* oh = out + (size_t)m * width + (size_t)h * hs;
  for (int i = threadIdx.x; i < hs; i += blockDim.x) {
    float o = 0.0f;
    for (int j = 0; j < nKeys; ++j)
      if (PTP_VISIBLE(j)) o = add(o, mul(sc[j], vbase[(size_t)j * kvWidth + i]));
    oh[i] = o;
  }
#undef PTP_VISIBLE
}

// ---------------------------------------------------------------------------
// Elementwise kernels.

constexpr int EW_THREADS = 256;

__global__ void ropeKernel(float* x, const float* __restrict__ table, int M, int nHeads, int hs) {
  const int half = hs / 2;
  const long long total = (long long)M * nHeads * half;
  for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total; idx += (long long)gridDim.x * blockDim.x) {
    const int p = (int)(idx % half);
    const long long t = idx / half;
    const int h = (int)(t % nHeads);
    const long long m = t / nHeads;
    const float c = table[(m * half + p) * 2], s = table[(m * half + p) * 2 + 1];
    const size_t o = (size_t)m * nHeads * hs + (size_t)h * hs + 2 * p;
    const float a = x[o], b = x[o + 1];
    x[o] = sub(mul(a, c), mul(b, s));
    x[o + 1] = add(mul(a, s), mul(b, c));
  }
}

__global__ void swigluKernel(float* y, const float* gate, const float* up, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const float g = gate[i];
    const float e = (float)exp(-(double)g);
    y[i] = mul(mul(g, divide(1.0f, add(1.0f, e))), up[i]);
  }
}

__global__ void addKernel(float* y, const float* x, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) y[i] = add(y[i], x[i]);
}

__global__ void embeddingKernel(float* y, const float* __restrict__ table, const int* __restrict__ ids, int M, int D) {
  const long long total = (long long)M * D;
  for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total; idx += (long long)gridDim.x * blockDim.x) {
    const long long m = idx / D, d = idx % D;
    const int id = ids[m];
    if (id >= 0) y[idx] = table[(size_t)id * D + d];
  }
}

inline int ewBlocks(long long n) {
  const long long b = (n + EW_THREADS - 1) / EW_THREADS;
  return (int)(b < 1 ? 1 : (b > 65535 ? 65535 : b));
}

}  // namespace

// ---------------------------------------------------------------------------

extern "C" int ptp_matmul(float* y, const float* x, const float* w, int M, int K, int N) {
  if (M <= 0 || N <= 0) return 0;
  if (K <= 0) return (int)cudaMemset(y, 0, sizeof(float) * (size_t)M * N);
  // Tile shape by M (all shapes compute each element identically, see above).
  if (M <= 2) return launchGemm<1, 256, 16, 1, 1>(y, x, w, M, K, N);
  if (M <= 32) return launchGemm<16, 64, 16, 1, 4>(y, x, w, M, K, N);
  return launchGemm<64, 64, 16, 4, 4>(y, x, w, M, K, N);
}

extern "C" int ptp_rmsnorm(float* y, const float* x, const float* g, int M, int D, float eps) {
  if (M <= 0 || D <= 0) return 0;
  rmsnormKernel<<<M, ROW_THREADS>>>(y, x, g, D, eps);
  return launchResult();
}

extern "C" int ptp_rope(float* x, const float* table, int M, int nHeads, int headSize) {
  const long long n = (long long)M * nHeads * (headSize / 2);
  if (n <= 0) return 0;
  ropeKernel<<<ewBlocks(n), EW_THREADS>>>(x, table, M, nHeads, headSize);
  return launchResult();
}

extern "C" int ptp_attention(float* out, const float* q, const float* keys, const float* values, const unsigned char* mask,
                             float* scratch, int M, int nKeys, int nHeads, int nKvHeads, int headSize, float sqrtHeadSize) {
  if (M <= 0 || nHeads <= 0 || headSize <= 0) return 0;
  dim3 grid(nHeads, M);
  attentionKernel<<<grid, ATT_THREADS>>>(out, q, keys, values, mask, scratch, M, nKeys, nHeads, nKvHeads, headSize, sqrtHeadSize);
  return launchResult();
}

extern "C" int ptp_swiglu(float* y, const float* gate, const float* up, long long n) {
  if (n <= 0) return 0;
  swigluKernel<<<ewBlocks(n), EW_THREADS>>>(y, gate, up, n);
  return launchResult();
}

extern "C" int ptp_add(float* y, const float* x, long long n) {
  if (n <= 0) return 0;
  addKernel<<<ewBlocks(n), EW_THREADS>>>(y, x, n);
  return launchResult();
}

extern "C" int ptp_embedding(float* y, const float* table, const int* ids, int M, int D) {
  const long long n = (long long)M * D;
  if (n <= 0) return 0;
  embeddingKernel<<<ewBlocks(n), EW_THREADS>>>(y, table, ids, M, D);
  return launchResult();
}

extern "C" int ptp_softmax(float* x, int M, int N) {
  if (M <= 0 || N <= 0) return 0;
  softmaxKernel<<<M, ROW_THREADS>>>(x, N);
  return launchResult();
}
