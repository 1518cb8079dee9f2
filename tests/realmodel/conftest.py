"""The real-model lane: llama.cpp's OpenAI-compatible server with SmolLM2-135M-Instruct, a
fault-injecting proxy in front of it, and a live `kennel serve` that knows it only as
`KENNEL_MODEL=openai-chat:smollm2` with `OPENAI_BASE_URL`.

The server and the model come from `tests/realmodel/build_llama.sh` (cached under
`~/.cache/kennel/llama`; `.ci/run` builds them first). Without them the lane is skipped with
the command to run, unless `KENNEL_TEST_REAL_MODEL=1` says it must run (CI), when it fails.
The tests assert behaviour (every turn ends, as documented), never the quality of an answer.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.conftest import fresh_database
from tests.e2e.conftest import LiveServer, free_port, start_live_server
from tests.realmodel.proxy import FaultProxy

BUILD_SCRIPT = Path(__file__).with_name("build_llama.sh")
CACHE = Path(os.environ.get("KENNEL_LLAMA_CACHE", Path.home() / ".cache/kennel/llama"))
# Another OpenAI-compatible server instead (plain http, e.g. an Ollama or vLLM on this machine):
# KENNEL_TEST_MODEL_URL=http://127.0.0.1:11434 KENNEL_TEST_MODEL_NAME=llama3.2
OTHER_SERVER = os.environ.get("KENNEL_TEST_MODEL_URL", "").rstrip("/").removesuffix("/v1")
MODEL_NAME = os.environ.get("KENNEL_TEST_MODEL_NAME", "smollm2") if OTHER_SERVER else "smollm2"
# Small output caps keep a 135M model, which rambles, to a few seconds a request; `low` keeps
# Kennel's defaults (500 output tokens a request, 60 s), which the chatty-model test holds to.
BUDGET_CAPS = {
    "standard": {"output_tokens": 64, "seconds": 120},
    "high": {"output_tokens": 96, "seconds": 240},
}


def _built() -> tuple[Path, Path] | None:
    server = CACHE / "bin" / "llama-server"
    models = sorted((CACHE / "models").glob("*.gguf")) if (CACHE / "models").is_dir() else []
    return (server, models[0]) if server.exists() and models else None


@pytest.fixture(scope="session")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of a running llama-server with the SmolLM2 model (or the other server)."""
    if OTHER_SERVER:
        yield OTHER_SERVER
        return
    found = _built()
    if found is None:
        message = (
            f"no llama-server and SmolLM2 model under {CACHE}: run {BUILD_SCRIPT} "
            "(a few minutes to an hour on a new machine; cached afterwards)"
        )
        if os.environ.get("KENNEL_TEST_REAL_MODEL"):
            pytest.fail(message)
        pytest.skip(message)
    server, model = found
    port = free_port()
    log = open(tmp_path_factory.mktemp("llama") / "llama-server.log", "wb")
    process = subprocess.Popen(
        [
            str(server),
            "-m",
            str(model),
            "-a",
            MODEL_NAME,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "-c",
            "8192",
            "-np",
            "2",
            "-t",
            "2",
            "--jinja",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama-server exited with {process.returncode}: see {log.name}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama-server not healthy after 120 s: see {log.name}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="session")
def proxy(llama: str) -> Iterator[FaultProxy]:
    address = httpx.URL(llama)
    with FaultProxy(address.port or 80, address.host) as running:
        yield running


@pytest.fixture(autouse=True)
def _no_fault_left(proxy: FaultProxy) -> Iterator[None]:
    proxy.fault = None
    yield
    proxy.fault = None


@pytest.fixture(scope="session")
def real_server(
    proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """`kennel serve` on SQLite whose model is the llama-server behind the proxy."""
    workdir = tmp_path_factory.mktemp("realmodel")
    env = {
        "KENNEL_MODEL": f"openai-chat:{MODEL_NAME}",
        "OPENAI_BASE_URL": proxy.base_url,
        "OPENAI_API_KEY": "none",
        "KENNEL_BUDGET_CAPS": json.dumps(BUDGET_CAPS),
        "KENNEL_ALLOW_PRIVATE_FETCH": "true",
        "KENNEL_ALLOW_PRIVATE_WEBHOOKS": "true",
        "KENNEL_TASK_WAIT_SECONDS": "50",
    }
    with (
        fresh_database("sqlite", workdir) as database_url,
        start_live_server(workdir, database_url, backend="sqlite", extra_env=env) as server,
    ):
        yield server
