"""`api/listeners.py`: the sockets `kennel serve` binds before it starts anything."""

from __future__ import annotations

import socket

import pytest

from kennel.api.listeners import PortUnavailable, bind_address

SETTING = ("set KENNEL_PORT or --port to a free one", "KENNEL_HOST or --host")


def test_a_free_port_is_bound_and_held() -> None:
    sockets = bind_address("127.0.0.1", 0, what="HTTP", setting=SETTING)
    try:
        (port,) = {s.getsockname()[1] for s in sockets}
        # Held: a second `kennel serve` starting at the same time is refused (both set
        # SO_REUSEADDR, which lets two sockets bind one port while neither listens).
        with pytest.raises(PortUnavailable) as refused:
            bind_address("127.0.0.1", port, what="HTTP", setting=SETTING)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # accepted into the backlog: a client waits during start-up, not refused
    finally:
        for s in sockets:
            s.close()
    assert str(refused.value) == (
        f"cannot listen on 127.0.0.1:{port} for HTTP: the port is in use "
        "(set KENNEL_PORT or --port to a free one)"
    )


def test_every_address_of_a_name_gets_the_same_port() -> None:
    sockets = bind_address("localhost", 0, what="HTTP", setting=SETTING)
    try:
        expected = {
            info[4][0] for info in socket.getaddrinfo("localhost", 0, type=socket.SOCK_STREAM)
        }
        assert {s.getsockname()[0] for s in sockets} == expected
        assert len({s.getsockname()[1] for s in sockets}) == 1
    finally:
        for s in sockets:
            s.close()


@pytest.mark.parametrize(
    ("host", "says"),
    [
        ("192.0.2.1", "cannot listen on 192.0.2.1:8000 for HTTP: no such address on this machine"),
        ("no-such-host.invalid", "'no-such-host.invalid' is no address of this machine"),
    ],
)
def test_an_address_not_of_this_machine_names_the_host_setting(host: str, says: str) -> None:
    with pytest.raises(PortUnavailable) as refused:
        bind_address(host, 8000, what="HTTP", setting=SETTING)
    assert says in str(refused.value)
    assert str(refused.value).endswith("KENNEL_HOST or --host)")
