#!/usr/bin/env bash
# Install llama.cpp's `llama-server`, built from source, so that `respcheck run --target
# llama.cpp` can spawn it on a GGUF written from the project's tiny model.
#
#   * llama.cpp's source comes vendored in the llama-cpp-python sdist on PyPI (pinned below; its
#     llama.cpp reports itself as 0.5.0-dev); only the `llama-server` target is built, with cmake
#     and the machine's g++, statically, without libcurl (it never downloads models);
#   * the binary is cached as ~/.cache/respcheck/llama-server-VERSION ($RESPCHECK_CACHE): when it
#     is there and runs, nothing is downloaded or built (the build took ~30 min of wall time on
#     this shared 2-core machine);
#   * a small venv, .venv-llama-cpp, holds gguf-py (pinned) and numpy: the harness uses it to
#     write the GGUF from the tiny model's safetensors (harness/targets/gguf_export.py); the
#     GGUF is cached next to the model and rewritten when the model changes.
#
# Idempotent. Usage: scripts/install-llama-cpp.sh
# Environment: PYTHON (default python3), LLAMA_CPP_PYTHON_VERSION (default 0.3.36),
#              GGUF_VERSION (default 0.19.0), JOBS (default: the number of cores).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
gguf_version="${GGUF_VERSION:-0.19.0}"
cache="${RESPCHECK_CACHE:-$HOME/.cache/respcheck}"
binary="$cache/llama-server-$version"
venv="$repo_root/.venv-llama-cpp"
jobs="${JOBS:-$(nproc)}"

if [ -x "$binary" ] && "$binary" --version >/dev/null 2>&1; then
    echo "llama-server from llama-cpp-python $version already at $binary"
else
    command -v cmake >/dev/null || { echo "install-llama-cpp.sh: cmake is needed (apt-get install cmake)" >&2; exit 2; }
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    echo "downloading the llama-cpp-python $version sdist"
    "$python" -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$work"
    tar -xzf "$work"/llama_cpp_python-"$version".tar.gz -C "$work"
    src="$work/llama_cpp_python-$version/vendor/llama.cpp"
    echo "building llama-server ($jobs jobs; about 30 min on 2 cores)"
    cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
        -DLLAMA_CURL=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=OFF >"$work/cmake.log"
    cmake --build "$work/build" --target llama-server -j "$jobs" >"$work/build.log" \
        || { tail -n 20 "$work/build.log" >&2; exit 1; }
    mkdir -p "$cache"
    cp "$work/build/bin/llama-server" "$binary.tmp" && mv "$binary.tmp" "$binary"
fi

if "$venv/bin/python" -c "import sys, importlib.metadata as m
sys.exit(m.version('gguf') != '$gguf_version')" 2>/dev/null; then
    echo "gguf $gguf_version already in $venv"
else
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet "gguf==$gguf_version"
fi
"$binary" --version 2>&1 | head -n 1
echo "llama-server: $binary; gguf-py $gguf_version in $venv"
