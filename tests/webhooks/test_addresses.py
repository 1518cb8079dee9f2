"""What a webhook may dial: URL shape, blocked address classes, DNS answers."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kennel.core.addresses import (
    BlockedAddressError,
    WebhookUrlError,
    blocked_reason,
    check_url,
    check_url_resolving,
    is_blocked,
    resolve_allowed,
    system_resolver,
)
from kennel.core.parsers import parse_networks
from tests.webhooks.conftest import StubResolver

# One address of every blocked class, with a word its reason must contain.
BLOCKED = [
    ("0.0.0.0", "this network"),
    ("0.1.2.3", "this network"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("169.254.169.254", "metadata"),
    ("169.254.1.1", "link-local"),
    ("192.0.0.8", "IETF"),
    ("192.0.2.10", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("192.88.99.1", "6to4 relay"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fe80::1", "link-local"),
    ("febf:ffff::1", "link-local"),
    ("fec0::1", "site-local"),
    ("fc00::1", "unique-local"),
    ("fd12:3456:789a::1", "unique-local"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("100::1", "discard"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("2001:2::1", "IETF"),
    ("64:ff9b:1::a00:1", "NAT64"),
    ("4000::1", "reserved IPv6"),
    # IPv4 carried inside IPv6 is judged by the IPv4.
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "metadata"),
    ("::ffff:0:10.0.0.1", "private"),
    ("::10.0.0.1", "private"),
    ("::127.0.0.1", "loopback"),
    ("64:ff9b::127.0.0.1", "loopback"),
    ("64:ff9b::a9fe:a9fe", "metadata"),
    ("2002:7f00:1::", "loopback"),
    ("2002:c0a8:101::1", "private"),
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "100.63.255.255",
    "100.128.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "223.255.255.255",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::8.8.8.8",
    "2002:808:808::1",
]

# IPv4 written the ways inet_aton and browsers accept, all meaning a blocked address.
UNUSUAL_IPV4 = [
    ("2130706433", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"),
    ("0x7f.0.0.1", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),
    ("0X7F.1", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
    ("127.0.1", "127.0.0.1"),
    ("017700000001", "127.0.0.1"),
    ("127.0.0.1.", "127.0.0.1"),
    ("0", "0.0.0.0"),
    ("2852039166", "169.254.169.254"),
    ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
    ("10.1", "10.0.0.1"),
    ("0300.0250.0.1", "192.168.0.1"),
]


def url_for(address: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}/hook"


class TestBlockedReason:
    @pytest.mark.parametrize(("address", "word"), BLOCKED)
    def test_blocked_classes(self, address: str, word: str) -> None:
        reason = blocked_reason(address)
        assert reason is not None
        assert word in reason
        assert is_blocked(ipaddress.ip_address(address))

    @pytest.mark.parametrize("address", PUBLIC)
    def test_public_addresses(self, address: str) -> None:
        assert blocked_reason(address) is None
        assert not is_blocked(address)

    @settings(database=None, max_examples=300)
    @given(st.ip_addresses())
    def test_blocks_everything_python_calls_non_global(
        self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    ) -> None:
        # Python's own tables are a second opinion; ours may only be stricter. Carried IPv4
        # is excluded: Python 3.11 calls all of ::ffff:0:0/96 private, we judge the IPv4.
        carries_ipv4 = isinstance(ip, ipaddress.IPv6Address) and (
            ip.sixtofour is not None or int(ip) >> 32 in (0, 0xFFFF, 0xFFFF0000, 0x64FF9B << 64)
        )
        if not carries_ipv4 and (not ip.is_global or ip.is_multicast or ip.is_reserved):
            assert is_blocked(ip)

    @settings(database=None, max_examples=300)
    @given(st.ip_addresses(v=4))
    def test_ipv6_forms_judged_by_their_ipv4(self, ip: ipaddress.IPv4Address) -> None:
        value = int(ip)
        forms = [
            ipaddress.IPv6Address((0xFFFF << 32) | value),  # ::ffff:a.b.c.d
            ipaddress.IPv6Address((0xFFFF << 48) | value),  # ::ffff:0:a.b.c.d
            ipaddress.IPv6Address((0x64FF9B << 96) | value),  # 64:ff9b::a.b.c.d
            ipaddress.IPv6Address((0x2002 << 112) | (value << 80)),  # 2002:aabb:ccdd::
        ]
        if value > 1:
            forms.append(ipaddress.IPv6Address(value))  # ::a.b.c.d
        for form in forms:
            assert is_blocked(form) == is_blocked(ip), form


class TestCheckUrl:
    @pytest.mark.parametrize(("address", "word"), BLOCKED)
    def test_refuses_blocked_literals(self, address: str, word: str) -> None:
        with pytest.raises(BlockedAddressError, match=word) as caught:
            check_url(url_for(address), allow_private=False, allowed_networks=[])
        assert caught.value.address == ipaddress.ip_address(address)

    @pytest.mark.parametrize("address", PUBLIC)
    def test_accepts_public_literals(self, address: str) -> None:
        url = url_for(address)
        assert check_url(url, allow_private=False, allowed_networks=[]) == url

    @pytest.mark.parametrize(("host", "meaning"), UNUSUAL_IPV4)
    def test_refuses_unusual_ipv4_forms(self, host: str, meaning: str) -> None:
        with pytest.raises(BlockedAddressError, match=f"stands for {re.escape(meaning)}"):
            check_url(f"https://{host}/", allow_private=False, allowed_networks=[])

    def test_judges_the_host_httpx_will_dial(self) -> None:
        # IDNA turns ideographic full stops into dots: httpx would dial 127.0.0.1.
        with pytest.raises(BlockedAddressError, match=r"127\.0\.0\.1 is a loopback"):
            check_url("https://127。0。0。1/", allow_private=False, allowed_networks=[])

    def test_unusual_form_of_a_public_address_is_refused_too(self) -> None:
        with pytest.raises(WebhookUrlError, match=r"write the address as 8\.8\.8\.8"):
            check_url("https://134744072/", allow_private=False, allowed_networks=[])

    @settings(database=None, max_examples=100)
    @given(st.ip_addresses(v=4), st.sampled_from(["decimal", "hex", "octal"]))
    def test_no_single_number_form_passes(self, ip: ipaddress.IPv4Address, form: str) -> None:
        value = int(ip)
        host = {"decimal": str(value), "hex": hex(value), "octal": f"0{value:o}"}[form]
        with pytest.raises(WebhookUrlError, match=str(ip).replace(".", r"\.")):
            check_url(f"https://{host}/", allow_private=True, allowed_networks=[])

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("", "non-empty"),
            ("example.com/hook", "absolute"),
            ("/hook", "absolute"),
            ("https:example.com", "absolute"),
            ("https:///hook", "name a host"),
            ("http://example.com/hook", "must use https"),
            ("ftp://example.com/hook", "must use https"),
            ("file:///etc/passwd", "must use https"),
            ("https://user:secret@example.com/", "user name or password"),
            ("https://token@example.com/", "user name or password"),
            ("https://@example.com/", "user name or password"),
            ("https://example.com\\@evil.test/", "backslashes"),
            ("https://exa mple.com/", "spaces"),
            ("https://example.com/\n", "control characters"),
            ("https://example.com:0/", "port"),
            ("https://example.com:65536/", "port"),
            ("https://example.com:http/", "not valid"),
            ("https://%6c%6f%63%61%6c%68%6f%73%74/", "not a valid host name"),
            ("https://1.2.3.4.5/", "not a valid IPv4"),
            ("https://999.1.1.1/", "not a valid IPv4"),
            ("https://08.0.0.1/", "not a valid IPv4"),
            # Full-width digits: int() reads them, resolvers must never be asked.
            ("https://\uff10\uff11\uff17\uff17.0.0.1/", "not a valid IPv4"),
            ("https://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", "not valid"),
            ("https://[fe80::1%25eth0]/", "zone"),
            ("https://[::1::2]/", "not valid"),
            ("https://example.com/" + "a" * 2030, "2,048"),
        ],
    )
    def test_refuses_bad_shapes(self, url: str, message: str) -> None:
        with pytest.raises(WebhookUrlError, match=message):
            check_url(url, allow_private=False, allowed_networks=[])

    def test_length_limit_is_inclusive(self) -> None:
        url = "https://example.com/" + "a" * (2048 - len("https://example.com/"))
        assert check_url(url, allow_private=False, allowed_networks=[]) == url

    @pytest.mark.parametrize(
        "url",
        [
            "https://example.com",
            "https://Example.COM:8443/hooks?a=1#frag",
            "https://bücher.de/hook",
            "https://my_host.example.com/",
            "https://localhost/",  # a name: judged by what it resolves to
        ],
    )
    def test_accepts_ordinary_urls_unchanged(self, url: str) -> None:
        assert check_url(url, allow_private=False, allowed_networks=[]) == url

    def test_allow_private_lifts_every_check(self) -> None:
        for url in ["http://127.0.0.1:8000/hook", "https://[::1]/", "http://169.254.169.254/"]:
            assert check_url(url, allow_private=True, allowed_networks=[]) == url

    def test_allow_private_keeps_the_shape_rules(self) -> None:
        with pytest.raises(WebhookUrlError, match="http or https"):
            check_url("ftp://127.0.0.1/", allow_private=True, allowed_networks=[])
        with pytest.raises(WebhookUrlError, match="user name"):
            check_url("http://a:b@127.0.0.1/", allow_private=True, allowed_networks=[])

    def test_allowed_networks_lift_the_block_inside_them(self) -> None:
        networks = parse_networks("10.0.0.0/8, fd00::/8")
        for url in ["https://10.1.2.3/", "https://[fd00::5]/", "https://[::ffff:10.9.9.9]/"]:
            assert check_url(url, allow_private=False, allowed_networks=networks) == url
        with pytest.raises(BlockedAddressError, match="loopback"):
            check_url("https://127.0.0.1/", allow_private=False, allowed_networks=networks)

    def test_allowed_networks_keep_https_only(self) -> None:
        networks = parse_networks("10.0.0.0/8")
        with pytest.raises(WebhookUrlError, match="must use https"):
            check_url("http://10.1.2.3/", allow_private=False, allowed_networks=networks)


class TestParseNetworks:
    def test_parses_a_list(self) -> None:
        assert parse_networks(" 10.0.0.0/8 ,192.168.1.7/24,, fd00::/8 ") == (
            ipaddress.ip_network("10.0.0.0/8"),
            ipaddress.ip_network("192.168.1.0/24"),
            ipaddress.ip_network("fd00::/8"),
        )
        assert parse_networks(["127.0.0.1"]) == (ipaddress.ip_network("127.0.0.1/32"),)
        assert parse_networks("") == ()

    def test_says_which_entry_is_wrong(self) -> None:
        with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33' is not a network"):
            parse_networks("10.0.0.0/8,10.0.0.0/33")


class TestResolveAllowed:
    async def test_returns_the_addresses_that_passed(self, resolver: StubResolver) -> None:
        resolver.answers["hooks.test"] = ["93.184.216.34", "2606:2800:220:1::", "93.184.216.34"]
        addresses = await resolve_allowed(
            "hooks.test", 443, allow_private=False, allowed_networks=[], resolver=resolver
        )
        assert addresses == ["93.184.216.34", "2606:2800:220:1::"]
        assert resolver.asked == [("hooks.test", 443)]

    @pytest.mark.parametrize(("address", "word"), BLOCKED)
    async def test_refuses_a_name_for_each_blocked_class(
        self, resolver: StubResolver, address: str, word: str
    ) -> None:
        resolver.answers["evil.test"] = [address]
        with pytest.raises(BlockedAddressError, match=f"evil.test resolves to .*{word}"):
            await resolve_allowed(
                "evil.test", 443, allow_private=False, allowed_networks=[], resolver=resolver
            )

    async def test_zones_are_dropped(self, resolver: StubResolver) -> None:
        resolver.answers["printer.test"] = ["fe80::1%eth0"]
        with pytest.raises(BlockedAddressError, match="link-local"):
            await resolve_allowed(
                "printer.test", 80, allow_private=False, allowed_networks=[], resolver=resolver
            )
        assert await resolve_allowed(
            "printer.test", 80, allow_private=True, allowed_networks=[], resolver=resolver
        ) == ["fe80::1"]

    async def test_refuses_when_any_answer_is_blocked(self, resolver: StubResolver) -> None:
        resolver.answers["mixed.test"] = ["93.184.216.34", "127.0.0.1"]
        with pytest.raises(BlockedAddressError, match=r"127\.0\.0\.1, a loopback"):
            await resolve_allowed(
                "mixed.test", 443, allow_private=False, allowed_networks=[], resolver=resolver
            )

    async def test_allowed_networks_and_allow_private(self, resolver: StubResolver) -> None:
        resolver.answers["evil.test"] = ["127.0.0.1"]
        loopback = parse_networks("127.0.0.0/8")
        assert await resolve_allowed(
            "evil.test", 80, allow_private=False, allowed_networks=loopback, resolver=resolver
        ) == ["127.0.0.1"]
        assert await resolve_allowed(
            "evil.test", 80, allow_private=True, allowed_networks=[], resolver=resolver
        ) == ["127.0.0.1"]

    async def test_ip_literals_are_not_resolved(self, resolver: StubResolver) -> None:
        assert await resolve_allowed(
            "8.8.8.8", 443, allow_private=False, allowed_networks=[], resolver=resolver
        ) == ["8.8.8.8"]
        with pytest.raises(BlockedAddressError, match="::1 is a loopback"):
            await resolve_allowed(
                "::1", 443, allow_private=False, allowed_networks=[], resolver=resolver
            )
        assert resolver.asked == []

    async def test_unknown_and_empty_names(self, resolver: StubResolver) -> None:
        resolver.answers["empty.test"] = []
        for host in ["unknown.test", "empty.test"]:
            with pytest.raises(WebhookUrlError, match=f"{host} could not be resolved"):
                await resolve_allowed(
                    host, 443, allow_private=False, allowed_networks=[], resolver=resolver
                )


class TestSystemResolver:
    async def test_numeric_hosts_need_no_dns(self) -> None:
        assert await system_resolver("127.0.0.1", 80) == ["127.0.0.1"]


class TestCheckUrlResolving:
    async def test_resolves_names_at_set_time(self, resolver: StubResolver) -> None:
        resolver.answers["hooks.test"] = ["93.184.216.34"]
        resolver.answers["evil.test"] = ["169.254.169.254"]
        url = "https://hooks.test/hook"
        assert await check_url_resolving(url, allow_private=False, resolver=resolver) == url
        with pytest.raises(BlockedAddressError, match="cloud metadata"):
            await check_url_resolving("https://evil.test/", allow_private=False, resolver=resolver)
        with pytest.raises(WebhookUrlError, match="could not be resolved"):
            await check_url_resolving(
                "https://nowhere.test/", allow_private=False, resolver=resolver
            )

    async def test_shape_is_checked_before_dns(self, resolver: StubResolver) -> None:
        with pytest.raises(WebhookUrlError, match="must use https"):
            await check_url_resolving("http://hooks.test/", allow_private=False, resolver=resolver)
        assert resolver.asked == []

    async def test_allow_private_skips_dns(self, resolver: StubResolver) -> None:
        url = "http://nowhere.test/"
        assert await check_url_resolving(url, allow_private=True, resolver=resolver) == url
        assert resolver.asked == []

    async def test_a_slow_resolver_is_given_up_on(self) -> None:
        import asyncio

        async def slow(host: str, port: int) -> list[str]:
            await asyncio.sleep(5)
            return ["93.184.216.34"]

        with pytest.raises(WebhookUrlError, match=r"could not be resolved in 0\.05 s"):
            await check_url_resolving(
                "https://slow.test/", allow_private=False, resolver=slow, timeout=0.05
            )
