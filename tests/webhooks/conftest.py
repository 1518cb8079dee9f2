"""Fixtures for the webhooks tests: a stub resolver (no test asks real DNS), real receivers."""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from tests.factories.receiver import Receiver


class StubResolver:
    """Answers from a dict the test can change between calls (DNS rebinding in one line)."""

    def __init__(self, answers: dict[str, Sequence[str]] | None = None) -> None:
        self.answers: dict[str, Sequence[str]] = dict(answers or {})
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.answers[host])


@pytest.fixture
def resolver() -> StubResolver:
    return StubResolver()


@pytest.fixture(scope="module")
def http_receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server.misbehaving()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test CA and a certificate for hooks.test (and no IP address) signed by it."""
    folder = tmp_path_factory.mktemp("tls")
    (folder / "leaf.ext").write_text(
        "subjectAltName=DNS:hooks.test\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    ca_ext = "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign"
    for command in (
        f"req -x509 {ec} -keyout ca.key -out ca.pem -days 2 -subj /CN=kennel-test-ca {ca_ext}",
        f"req {ec} -keyout leaf.key -out leaf.csr -subj /CN=hooks.test",
        "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 2"
        " -extfile leaf.ext",
    ):
        subprocess.run(["openssl", *command.split()], cwd=folder, check=True, capture_output=True)
    return folder


@pytest.fixture(scope="module")
def tls_receiver(certificates: Path) -> Iterator[Receiver]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates / "leaf.pem", certificates / "leaf.key")
    with Receiver(tls=context) as server:
        yield server.misbehaving()


@pytest.fixture
async def tls_transport(certificates: Path) -> AsyncIterator[httpx.AsyncHTTPTransport]:
    """What deliver uses by default, trusting the test CA instead of the public ones."""
    context = ssl.create_default_context(cafile=certificates / "ca.pem")
    async with httpx.AsyncHTTPTransport(verify=context, trust_env=False) as transport:
        yield transport


@pytest.fixture(autouse=True)
def _forget_requests(request: pytest.FixtureRequest) -> None:
    for name in ("http_receiver", "tls_receiver"):
        if name in request.fixturenames:
            request.getfixturevalue(name).forget()
