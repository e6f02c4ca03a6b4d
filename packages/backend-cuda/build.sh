#!/usr/bin/env bash
# Builds the CUDA backend plug-in's native addon: packages/backend-cuda/build/ptp_cuda.node
#   kernels.cu  --nvcc-->  build/kernels.o   (sm_80, sm_90 SASS + compute_90 PTX)
#   addon.cpp   --g++--->  build/addon.o     (Node-API via node-addon-api)
#   link        --g++--->  build/ptp_cuda.node  (CUDA runtime linked statically)
# Run from anywhere: `npm run build:cuda` at the repository root.
# Environment: CUDA_HOME (default /usr/local/cuda), NVCC (default: nvcc on PATH,
# else $CUDA_HOME/bin/nvcc), CUDA_ARCHS (default "80 90"), CXX (default g++).
set -euo pipefail

PKG="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$PKG/../.." && pwd)"
OUT="$PKG/build"
CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
CXX="${CXX:-g++}"
CUDA_ARCHS="${CUDA_ARCHS:-80 90}"

NVCC="${NVCC:-$(command -v nvcc || true)}"
if [ -z "$NVCC" ] && [ -x "$CUDA_HOME/bin/nvcc" ]; then NVCC="$CUDA_HOME/bin/nvcc"; fi
if [ -z "$NVCC" ]; then
  echo "build:cuda: nvcc not found (install the CUDA toolkit, put nvcc on PATH or set NVCC / CUDA_HOME)" >&2
  exit 1
fi
if ! command -v "$CXX" >/dev/null; then
  echo "build:cuda: C++ compiler '$CXX' not found" >&2
  exit 1
fi

# Headers: Node's (next to the running node, else /usr/include/node) and node-addon-api's.
NODE_INC=""
for d in "$(dirname "$(dirname "$(command -v node)")")/include/node" /usr/include/node /usr/local/include/node; do
  if [ -f "$d/node_api.h" ]; then NODE_INC="$d"; break; fi
done
if [ -z "$NODE_INC" ]; then
  echo "build:cuda: Node headers (node_api.h) not found; install the nodejs headers package" >&2
  exit 1
fi
NAPI_INC="$(cd "$ROOT" && node -p "require('node-addon-api').include_dir" 2>/dev/null || true)"
case "$NAPI_INC" in /*) ;; "") ;; *) NAPI_INC="$ROOT/$NAPI_INC" ;; esac
if [ -z "$NAPI_INC" ] || [ ! -f "$NAPI_INC/napi.h" ]; then
  echo "build:cuda: node-addon-api not found; run npm ci at the repository root" >&2
  exit 1
fi

# Real code for each listed architecture, plus PTX of the newest for later GPUs.
GENCODE=()
last=""
for a in $CUDA_ARCHS; do
  GENCODE+=("-gencode=arch=compute_$a,code=sm_$a")
  last="$a"
done
GENCODE+=("-gencode=arch=compute_$last,code=compute_$last")

mkdir -p "$OUT"
echo "build:cuda: $("$NVCC" --version | tail -1)"
echo "build:cuda: nvcc kernels.cu (archs: $CUDA_ARCHS + PTX compute_$last)"
"$NVCC" -O3 -std=c++17 "${GENCODE[@]}" -Xcompiler -fPIC -c "$PKG/src/kernels.cu" -o "$OUT/kernels.o"

echo "build:cuda: $CXX addon.cpp (node-api $NODE_INC, node-addon-api $NAPI_INC)"
"$CXX" -O2 -std=c++17 -fPIC -fexceptions -Wall -Wno-unused-parameter \
  -DNAPI_VERSION=8 -I"$NODE_INC" -I"$NAPI_INC" -I"$CUDA_HOME/include" \
  -c "$PKG/src/addon.cpp" -o "$OUT/addon.o"

echo "build:cuda: link build/ptp_cuda.node (static cudart)"
CUDA_LIB="$CUDA_HOME/lib64"
[ -d "$CUDA_LIB" ] || CUDA_LIB="$CUDA_HOME/lib"
"$CXX" -shared -o "$OUT/ptp_cuda.node" "$OUT/kernels.o" "$OUT/addon.o" \
  -L"$CUDA_LIB" -lcudart_static -ldl -lpthread -lrt

# A built addon must load in this Node (no GPU needed to load it).
node -e "const a = require('$OUT/ptp_cuda.node'); console.log('build:cuda: loaded; deviceCount() = ' + a.deviceCount() + '; ' + a.deviceName())"
echo "build:cuda: done: $OUT/ptp_cuda.node"
