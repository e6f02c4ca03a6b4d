// Node-API addon of the ptp-ts CUDA backend plug-in.
//
// Exposes device discovery, device-resident buffers behind integer handles
// and the kernels of kernels.cu. It checks only what it must to stay memory
// safe (handles exist, byte spans lie inside their buffers); dtype, shape and
// contract checks are done by the JavaScript side (index.js), which throws
// the backend's BackendError. Every CUDA failure becomes a JavaScript Error;
// nothing here aborts the process, including a machine without a GPU or
// without a driver (cudaGetDeviceCount's error is caught and reported).

#define NAPI_CPP_EXCEPTIONS
#include <napi.h>

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "kernels.h"

namespace {

struct DeviceBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
};

std::unordered_map<uint32_t, DeviceBuffer> buffers;
uint32_t nextHandle = 1;
bool initialised = false;
// Attention's score scratch: grows, never shrinks.
float* scratch = nullptr;
size_t scratchBytes = 0;

std::string cudaMessage(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

void check(Napi::Env env, cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear a non-sticky error so later calls can proceed
    throw Napi::Error::New(env, std::string("CUDA error in ") + what + ": " + cudaMessage(e));
  }
}

void checkLaunch(Napi::Env env, int e, const char* what) { check(env, (cudaError_t)e, what); }

// ---- argument helpers ------------------------------------------------------

double num(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string("expected a number for ") + name);
  return info[i].As<Napi::Number>().DoubleValue();
}

int64_t integer(const Napi::CallbackInfo& info, size_t i, const char* name) {
  const double v = num(info, i, name);
  if (!(v == std::floor(v)) || v < 0 || v > 9007199254740991.0) {
    throw Napi::RangeError::New(info.Env(), std::string(name) + " must be a non-negative integer");
  }
  return (int64_t)v;
}

int int32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  const int64_t v = integer(info, i, name);
  if (v > 2147483647LL) throw Napi::RangeError::New(info.Env(), std::string(name) + " is too large");
  return (int)v;
}

DeviceBuffer& handle(const Napi::CallbackInfo& info, size_t i, const char* name) {
  const int64_t h = integer(info, i, name);
  auto it = buffers.find((uint32_t)h);
  if (h > 0xffffffffLL || it == buffers.end()) throw Napi::Error::New(info.Env(), std::string(name) + ": not a live buffer handle");
  return it->second;
}

/** The device pointer of a handle, checked to hold at least `bytes` bytes. */
template <typename T>
T* ptr(const Napi::CallbackInfo& info, size_t i, const char* name, size_t bytes) {
  DeviceBuffer& b = handle(info, i, name);
  if (bytes > b.bytes) throw Napi::RangeError::New(info.Env(), std::string(name) + ": span larger than the buffer");
  return static_cast<T*>(b.ptr);
}

void requireInit(Napi::Env env) {
  if (!initialised) throw Napi::Error::New(env, "ptp_cuda: init() was not called");
}

// ---- discovery -------------------------------------------------------------

struct Probe {
  int count = 0;
  std::string reason;
};

Probe probe() {
  Probe p;
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    p.reason = "cudaGetDeviceCount: " + cudaMessage(e);
    return p;
  }
  if (n <= 0) {
    p.reason = "cudaGetDeviceCount returned 0 devices";
    return p;
  }
  p.count = n;
  return p;
}

Napi::Value DeviceCount(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), probe().count); }

// deviceName(index = 0): the device's name, or why there is none.
Napi::Value DeviceName(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Probe p = probe();
  if (p.count == 0) return Napi::String::New(env, "no CUDA device (" + p.reason + ")");
  const int index = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
  if (index < 0 || index >= p.count) return Napi::String::New(env, "no CUDA device with index " + std::to_string(index));
  cudaDeviceProp prop;
  const cudaError_t e = cudaGetDeviceProperties(&prop, index);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return Napi::String::New(env, "cudaGetDeviceProperties: " + cudaMessage(e));
  }
  return Napi::String::New(env, std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ", " +
                                    std::to_string((long long)(prop.totalGlobalMem >> 20)) + " MiB)");
}

Napi::Value ProbeJs(const Napi::CallbackInfo& info) {
  const Probe p = probe();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("count", p.count);
  o.Set("reason", p.reason);
  return o;
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int device = info.Length() > 0 ? int32(info, 0, "device") : 0;
  const Probe p = probe();
  if (p.count == 0) throw Napi::Error::New(env, "no CUDA device: " + p.reason);
  if (device >= p.count) throw Napi::Error::New(env, "no CUDA device with index " + std::to_string(device));
  check(env, cudaSetDevice(device), "cudaSetDevice");
  check(env, cudaFree(nullptr), "context creation");
  initialised = true;
  return env.Undefined();
}

Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  requireInit(info.Env());
  check(info.Env(), cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  return info.Env().Undefined();
}

// ---- memory ----------------------------------------------------------------

// alloc(bytes) -> handle: zero-filled device memory.
Napi::Value Alloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireInit(env);
  const size_t bytes = (size_t)integer(info, 0, "bytes");
  DeviceBuffer b;
  b.bytes = bytes;
  check(env, cudaMalloc(&b.ptr, bytes < 4 ? 4 : bytes), "cudaMalloc");
  const cudaError_t e = cudaMemset(b.ptr, 0, bytes < 4 ? 4 : bytes);
  if (e != cudaSuccess) {
    cudaFree(b.ptr);
    check(env, e, "cudaMemset");
  }
  const uint32_t h = nextHandle++;
  buffers[h] = b;
  return Napi::Number::New(env, h);
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DeviceBuffer& b = handle(info, 0, "buffer");
  const void* p = b.ptr;
  const uint32_t h = (uint32_t)integer(info, 0, "buffer");
  buffers.erase(h);
  check(env, cudaFree(const_cast<void*>(p)), "cudaFree");
  return env.Undefined();
}

// upload(handle, byteOffset, typedArray): host -> device.
Napi::Value Upload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DeviceBuffer& b = handle(info, 0, "buffer");
  const size_t offset = (size_t)integer(info, 1, "byteOffset");
  if (info.Length() < 3 || !info[2].IsTypedArray()) throw Napi::TypeError::New(env, "upload: expected a typed array");
  Napi::TypedArray a = info[2].As<Napi::TypedArray>();
  const size_t bytes = a.ByteLength();
  if (offset > b.bytes || bytes > b.bytes - offset) throw Napi::RangeError::New(env, "upload: span outside the buffer");
  if (bytes == 0) return env.Undefined();
  const uint8_t* src = static_cast<const uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
  check(env, cudaMemcpy(static_cast<uint8_t*>(b.ptr) + offset, src, bytes, cudaMemcpyHostToDevice), "upload (cudaMemcpy)");
  return env.Undefined();
}

// download(handle, byteOffset, byteLength) -> ArrayBuffer: device -> host.
Napi::Value Download(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DeviceBuffer& b = handle(info, 0, "buffer");
  const size_t offset = (size_t)integer(info, 1, "byteOffset");
  const size_t bytes = (size_t)integer(info, 2, "byteLength");
  if (offset > b.bytes || bytes > b.bytes - offset) throw Napi::RangeError::New(env, "download: span outside the buffer");
  Napi::ArrayBuffer out = Napi::ArrayBuffer::New(env, bytes);
  if (bytes) check(env, cudaMemcpy(out.Data(), static_cast<const uint8_t*>(b.ptr) + offset, bytes, cudaMemcpyDeviceToHost), "download (cudaMemcpy)");
  return out;
}

// copy(dst, dstByteOffset, src, srcByteOffset, bytes): device -> device, overlap allowed.
Napi::Value Copy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DeviceBuffer& d = handle(info, 0, "dst");
  const size_t dOff = (size_t)integer(info, 1, "dstByteOffset");
  DeviceBuffer& s = handle(info, 2, "src");
  const size_t sOff = (size_t)integer(info, 3, "srcByteOffset");
  const size_t bytes = (size_t)integer(info, 4, "bytes");
  if (dOff > d.bytes || bytes > d.bytes - dOff || sOff > s.bytes || bytes > s.bytes - sOff) throw Napi::RangeError::New(env, "copy: span outside a buffer");
  if (bytes == 0) return env.Undefined();
  uint8_t* dp = static_cast<uint8_t*>(d.ptr) + dOff;
  const uint8_t* sp = static_cast<const uint8_t*>(s.ptr) + sOff;
  const bool overlap = d.ptr == s.ptr && dp < sp + bytes && sp < dp + bytes;
  if (!overlap) {
    check(env, cudaMemcpy(dp, sp, bytes, cudaMemcpyDeviceToDevice), "copy (cudaMemcpy)");
  } else if (dp != sp) {
    void* tmp = nullptr;
    check(env, cudaMalloc(&tmp, bytes), "copy (cudaMalloc)");
    cudaError_t e = cudaMemcpy(tmp, sp, bytes, cudaMemcpyDeviceToDevice);
    if (e == cudaSuccess) e = cudaMemcpy(dp, tmp, bytes, cudaMemcpyDeviceToDevice);
    cudaFree(tmp);
    check(env, e, "copy (cudaMemcpy)");
  }
  return env.Undefined();
}

// ---- ops (element counts; the JS side has checked dtypes and shapes) -------

constexpr size_t F = sizeof(float);

Napi::Value Matmul(const Napi::CallbackInfo& info) {
  const size_t M = int32(info, 3, "M"), K = int32(info, 4, "K"), N = int32(info, 5, "N");
  float* y = ptr<float>(info, 0, "y", M * N * F);
  const float* x = ptr<float>(info, 1, "x", M * K * F);
  const float* w = ptr<float>(info, 2, "w", N * K * F);
  checkLaunch(info.Env(), ptp_matmul(y, x, w, (int)M, (int)K, (int)N), "matmul");
  return info.Env().Undefined();
}

Napi::Value Rmsnorm(const Napi::CallbackInfo& info) {
  const size_t M = int32(info, 3, "M"), D = int32(info, 4, "D");
  const float eps = (float)num(info, 5, "eps");
  float* y = ptr<float>(info, 0, "y", M * D * F);
  const float* x = ptr<float>(info, 1, "x", M * D * F);
  const float* g = ptr<float>(info, 2, "weight", D * F);
  checkLaunch(info.Env(), ptp_rmsnorm(y, x, g, (int)M, (int)D, eps), "rmsnorm");
  return info.Env().Undefined();
}

// rope(x, table, M, nHeads, headSize): table = [M, headSize / 2, 2] (cos, sin).
Napi::Value Rope(const Napi::CallbackInfo& info) {
  const size_t M = int32(info, 2, "M"), nHeads = int32(info, 3, "nHeads"), hs = int32(info, 4, "headSize");
  float* x = ptr<float>(info, 0, "x", M * nHeads * hs * F);
  const float* table = ptr<float>(info, 1, "table", M * (hs / 2) * 2 * F);
  checkLaunch(info.Env(), ptp_rope(x, table, (int)M, (int)nHeads, (int)hs), "rope");
  return info.Env().Undefined();
}

// attention(out, q, keys, values, mask | -1, M, nKeys, nHeads, nKvHeads, headSize)
Napi::Value Attention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const size_t M = int32(info, 5, "M"), nKeys = int32(info, 6, "nKeys"), nHeads = int32(info, 7, "nHeads");
  const size_t nKv = int32(info, 8, "nKvHeads"), hs = int32(info, 9, "headSize");
  if (nKv == 0 || nHeads % nKv != 0) throw Napi::RangeError::New(env, "attention: nHeads must be a multiple of nKvHeads");
  float* out = ptr<float>(info, 0, "out", M * nHeads * hs * F);
  const float* q = ptr<float>(info, 1, "q", M * nHeads * hs * F);
  const float* k = ptr<float>(info, 2, "keys", nKeys * nKv * hs * F);
  const float* v = ptr<float>(info, 3, "values", nKeys * nKv * hs * F);
  const unsigned char* mask = nullptr;
  if (!(info[4].IsNumber() && info[4].As<Napi::Number>().DoubleValue() < 0)) mask = ptr<unsigned char>(info, 4, "mask", M * nKeys);
  const size_t need = M * nHeads * nKeys * F;
  if (need > scratchBytes) {
    if (scratch) cudaFree(scratch);
    scratch = nullptr;
    scratchBytes = 0;
    check(env, cudaMalloc(reinterpret_cast<void**>(&scratch), need), "attention scratch (cudaMalloc)");
    scratchBytes = need;
  }
  const float sqrtHs = (float)std::sqrt((double)hs);
  checkLaunch(env, ptp_attention(out, q, k, v, mask, scratch, (int)M, (int)nKeys, (int)nHeads, (int)nKv, (int)hs, sqrtHs), "attention");
  return env.Undefined();
}

Napi::Value Swiglu(const Napi::CallbackInfo& info) {
  const size_t n = (size_t)integer(info, 3, "n");
  float* y = ptr<float>(info, 0, "y", n * F);
  const float* g = ptr<float>(info, 1, "gate", n * F);
  const float* u = ptr<float>(info, 2, "up", n * F);
  checkLaunch(info.Env(), ptp_swiglu(y, g, u, (long long)n), "swiglu");
  return info.Env().Undefined();
}

Napi::Value Add(const Napi::CallbackInfo& info) {
  const size_t n = (size_t)integer(info, 2, "n");
  float* y = ptr<float>(info, 0, "y", n * F);
  const float* x = ptr<float>(info, 1, "x", n * F);
  checkLaunch(info.Env(), ptp_add(y, x, (long long)n), "add");
  return info.Env().Undefined();
}

// embedding(y, table, ids, M, D): the JS side has checked every id < rows.
Napi::Value Embedding(const Napi::CallbackInfo& info) {
  const size_t M = int32(info, 3, "M"), D = int32(info, 4, "D");
  float* y = ptr<float>(info, 0, "y", M * D * F);
  const float* table = ptr<float>(info, 1, "table", 0);
  const int* ids = ptr<int>(info, 2, "ids", M * sizeof(int));
  checkLaunch(info.Env(), ptp_embedding(y, table, ids, (int)M, (int)D), "embedding");
  return info.Env().Undefined();
}

Napi::Value Softmax(const Napi::CallbackInfo& info) {
  const size_t M = int32(info, 1, "M"), N = int32(info, 2, "N");
  float* x = ptr<float>(info, 0, "x", M * N * F);
  checkLaunch(info.Env(), ptp_softmax(x, (int)M, (int)N), "softmax");
  return info.Env().Undefined();
}

// Frees every buffer (the backend's dispose()).
Napi::Value Reset(const Napi::CallbackInfo& info) {
  for (auto& kv : buffers) cudaFree(kv.second.ptr);
  buffers.clear();
  if (scratch) cudaFree(scratch);
  scratch = nullptr;
  scratchBytes = 0;
  return info.Env().Undefined();
}

Napi::Value LiveBuffers(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), (double)buffers.size()); }

Napi::Object Module(Napi::Env env, Napi::Object exports) {
  exports.Set("deviceCount", Napi::Function::New(env, DeviceCount));
  exports.Set("deviceName", Napi::Function::New(env, DeviceName));
  exports.Set("probe", Napi::Function::New(env, ProbeJs));
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("synchronize", Napi::Function::New(env, Synchronize));
  exports.Set("alloc", Napi::Function::New(env, Alloc));
  exports.Set("free", Napi::Function::New(env, Free));
  exports.Set("upload", Napi::Function::New(env, Upload));
  exports.Set("download", Napi::Function::New(env, Download));
  exports.Set("copy", Napi::Function::New(env, Copy));
  exports.Set("matmul", Napi::Function::New(env, Matmul));
  exports.Set("rmsnorm", Napi::Function::New(env, Rmsnorm));
  exports.Set("rope", Napi::Function::New(env, Rope));
  exports.Set("attention", Napi::Function::New(env, Attention));
  exports.Set("swiglu", Napi::Function::New(env, Swiglu));
  exports.Set("add", Napi::Function::New(env, Add));
  exports.Set("embedding", Napi::Function::New(env, Embedding));
  exports.Set("softmax", Napi::Function::New(env, Softmax));
  exports.Set("reset", Napi::Function::New(env, Reset));
  exports.Set("liveBuffers", Napi::Function::New(env, LiveBuffers));
  return exports;
}

}  // namespace

NODE_API_MODULE(ptp_cuda, Module)
