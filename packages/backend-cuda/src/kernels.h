// C interface of the CUDA kernels (kernels.cu), called by the Node addon
// (addon.cpp). Every pointer is a device pointer; every size is an element
// count. Each function launches on the default stream and returns the
// cudaError_t of the launch as an int (0 = success).
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

int ptp_matmul(float* y, const float* x, const float* w, int M, int K, int N);
int ptp_rmsnorm(float* y, const float* x, const float* g, int M, int D, float eps);
// table: [M, headSize / 2, 2] = (cos, sin) of the pair angles, computed by the host.
int ptp_rope(float* x, const float* table, int M, int nHeads, int headSize);
// mask: u8 [M, nKeys] or nullptr for causal. scratch: >= M * nHeads * nKeys floats.
int ptp_attention(float* out, const float* q, const float* keys, const float* values, const unsigned char* mask,
                  float* scratch, int M, int nKeys, int nHeads, int nKvHeads, int headSize, float sqrtHeadSize);
int ptp_swiglu(float* y, const float* gate, const float* up, long long n);
int ptp_add(float* y, const float* x, long long n);
int ptp_embedding(float* y, const float* table, const int* ids, int M, int D);
int ptp_softmax(float* x, int M, int N);

#ifdef __cplusplus
}
#endif
