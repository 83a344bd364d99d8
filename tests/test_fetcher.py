"""The URL fetcher against a fake image host on 127.0.0.1 and a scripted resolver: what it fetches,
which addresses and URLs it refuses and why, how it follows redirects, and its limits."""

import gzip
import ipaddress
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.fetcher import (
    ALLOW_HINT,
    FetchedImage,
    UrlPolicy,
    UrlRefused,
    check_address,
    fetch_image,
    resolve_checked,
)
from tests.factories import image_bytes
from tests.fakes.image_host import ImageHost, Page

PNG = image_bytes()
MAX_BYTES = 1_000_000
LOCAL = UrlPolicy(allow=("127.0.0.1",))


@dataclass
class FakeResolver:
    """`socket.getaddrinfo` with scripted answers for some names and the real one for the rest."""

    real: Callable[..., list[Any]]
    answers: dict[str, list[list[str]]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)

    def answer(self, name: str, *answers: list[str]) -> None:
        """Answer lookups of `name` with each list of addresses in turn (the last one repeats);
        an empty list means the name does not resolve."""
        self.answers[name] = list(answers)

    def __call__(self, host: str, port: int | None, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in self.answers:
            return self.real(host, port, *args, **kwargs)
        self.lookups.append(host)
        queue = self.answers[host]
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [address_info(address, port or 0) for address in addresses]


def address_info(text: str, port: int) -> tuple[Any, ...]:
    """One getaddrinfo entry for a TCP address."""
    if ipaddress.ip_address(text).version == 4:
        return (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (text, port))
    return (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (text, port, 0, 0))


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> FakeResolver:
    """A scripted resolver in place of the system's for the length of one test."""
    fake = FakeResolver(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


@pytest.fixture
async def image_host() -> AsyncIterator[ImageHost]:
    """A fake image host on 127.0.0.1 that serves a PNG at /cat.png."""
    async with ImageHost(pages={"/cat.png": Page(PNG)}) as host:
        yield host


async def refusal(url: str, policy: UrlPolicy = LOCAL, **options: Any) -> str:
    """The detail of the UrlRefused that fetching `url` raises."""
    options.setdefault("max_bytes", MAX_BYTES)
    with pytest.raises(UrlRefused) as refused:
        await fetch_image(url, policy, **options)
    assert refused.value.status == 422
    assert refused.value.to_problem()["type"].endswith("/url-refused")
    return refused.value.detail


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "WEBP"])
async def test_fetches_an_image_and_sniffs_its_format(
    image_host: ImageHost, image_format: str
) -> None:
    data = image_bytes(image_format=image_format)
    # The sniffed format counts, not what the server says.
    image_host.pages["/picture"] = Page(data, headers={"content-type": "application/octet-stream"})
    url = image_host.url("/picture")

    image = await fetch_image(url, LOCAL, max_bytes=MAX_BYTES)

    assert image == FetchedImage(url, data, image_format.lower())
    assert image_host.received[0].headers["host"] == f"127.0.0.1:{image_host.port}"


async def test_connects_to_the_checked_address_and_sends_the_original_host(
    image_host: ImageHost, resolver: FakeResolver
) -> None:
    # A second lookup would get the metadata address, as a rebinding DNS server would answer.
    resolver.answer("images.example", ["127.0.0.1"], ["169.254.169.254"])
    url = image_host.url("/cat.png", host="images.example")

    image = await fetch_image(url, UrlPolicy(allow=("127.0.0.0/8",)), max_bytes=MAX_BYTES)

    assert image.data == PNG
    assert resolver.lookups == ["images.example"]
    assert image_host.received[0].headers["host"] == f"images.example:{image_host.port}"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/cat.png", "resolves to 127.0.0.1, a loopback address"),
        ("http://localhost/cat.png", "a loopback address"),
        ("http://[::1]/cat.png", "resolves to ::1, a loopback address"),
        ("http://10.0.0.5/x.png", "resolves to 10.0.0.5, a private address"),
        ("http://172.16.3.4/cat.png", "resolves to 172.16.3.4, a private address"),
        ("http://192.168.1.10/cat.png", "resolves to 192.168.1.10, a private address"),
        ("http://100.64.0.1/cat.png", "100.64.0.1, a shared (carrier-grade NAT) address"),
        ("http://169.254.169.254/latest/", "169.254.169.254, a cloud metadata address"),
        ("http://[fd00:ec2::254]/latest/", "fd00:ec2::254, a cloud metadata address"),
        ("http://0.0.0.0/cat.png", "resolves to 0.0.0.0, an unspecified address"),
        ("http://[::ffff:127.0.0.1]/cat.png", "which carries 127.0.0.1, a loopback address"),
        ("http://[fd00::1]/cat.png", "resolves to fd00::1, a private address"),
        ("http://[fe80::1]/cat.png", "resolves to fe80::1, a link-local address"),
        ("http://2130706433/cat.png", "resolves to 127.0.0.1, a loopback address"),
        ("http://0x7f000001/cat.png", "resolves to 127.0.0.1, a loopback address"),
        ("http://0x7f.1/cat.png", "resolves to 127.0.0.1, a loopback address"),
        ("http://127.1/cat.png", "resolves to 127.0.0.1, a loopback address"),
        ("http://0177.1/cat.png", "resolves to 127.0.0.1, a loopback address"),
        ("http://0177.0.0.1/cat.png", "is not a valid URL: Invalid IPv4 address"),
        ("http://224.0.0.1/cat.png", "resolves to 224.0.0.1, a multicast address"),
        ("http://[2002:7f00:1::]/cat.png", "which carries 127.0.0.1, a loopback address"),
        ("http://[64:ff9b::a00:1]/cat.png", "which carries 10.0.0.1, a private address"),
        ("http://[fec0::1]/cat.png", "an IPv6 address outside global unicast"),
    ],
)
async def test_refuses_addresses_that_are_not_globally_reachable(url: str, reason: str) -> None:
    detail = await refusal(url, UrlPolicy())

    assert url in detail
    assert reason in detail


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/cat.png", "is not an http or https URL"),
        ("file:///etc/passwd", "is not an http or https URL"),
        ("gopher://example.com:70/", "is not an http or https URL"),
        ("http://example.com:0/cat.png", "has port 0, outside 1-65535"),
        ("http://example.com:99999/cat.png", "has port 99999, outside 1-65535"),
        ("http:///cat.png", "has no host"),
        ("http://1.2.3.4.5/cat.png", "has a host that is not a valid IP address"),
        ("http://0x7f.08/cat.png", "has a host that is not a valid IP address"),
        ("http://256.1/cat.png", "has a host that is not a valid IP address"),
        ("http://exa%20mple.com/cat.png", "neither a DNS name nor an IP address"),
        ("http://-images-.example/cat.png", "neither a DNS name nor an IP address"),
    ],
)
async def test_refuses_malformed_urls(url: str, reason: str) -> None:
    assert reason in await refusal(url, UrlPolicy())


async def test_refuses_credentials_without_repeating_them(image_host: ImageHost) -> None:
    url = f"http://user:s3cret@127.0.0.1:{image_host.port}/cat.png"

    detail = await refusal(url)

    assert "carries a user name or password" in detail
    assert "s3cret" not in detail
    assert image_host.received == []


async def test_refuses_a_host_that_does_not_resolve(resolver: FakeResolver) -> None:
    resolver.answer("gone.example", [])

    assert "does not resolve" in await refusal("https://gone.example/cat.png", UrlPolicy())


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254, a cloud metadata address"),
        ("http://[::ffff:169.254.169.254]/", "which carries 169.254.169.254"),
        ("http://10.0.0.5/x.png", "resolves to 10.0.0.5, a private address"),
        ("file:///etc/passwd", "is not an http or https URL"),
        ("ftp://127.0.0.1/cat.png", "is not an http or https URL"),
    ],
)
async def test_checks_every_redirect_again(
    image_host: ImageHost, location: str, reason: str
) -> None:
    image_host.pages["/go"] = Page(status=302, headers={"location": location})
    requested: list[httpx.URL] = []

    async def record(request: httpx.Request) -> None:
        requested.append(request.url)

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as http:
        detail = await refusal(image_host.url("/go"), client=http)

    assert f"{image_host.url('/go')} redirected to a refused URL" in detail
    assert reason in detail
    assert [url.host for url in requested] == ["127.0.0.1"]
    assert image_host.paths == ["/go"]


async def test_follows_up_to_three_relative_and_absolute_redirects(image_host: ImageHost) -> None:
    image_host.pages |= {
        "/one": Page(status=301, headers={"location": "two"}),
        "/two": Page(status=308, headers={"location": f"//127.0.0.1:{image_host.port}/three"}),
        "/three": Page(status=303, headers={"location": "/cat.png#fragment"}),
    }

    image = await fetch_image(image_host.url("/one"), LOCAL, max_bytes=MAX_BYTES)

    assert image.data == PNG
    assert image.url == image_host.url("/cat.png")
    assert image_host.paths == ["/one", "/two", "/three", "/cat.png"]


async def test_refuses_a_fourth_redirect(image_host: ImageHost) -> None:
    for page, status, target in [("/a", 302, "/b"), ("/b", 307, "/c"), ("/c", 302, "/d")]:
        image_host.pages[page] = Page(status=status, headers={"location": target})
    image_host.pages["/d"] = Page(status=302, headers={"location": "/cat.png"})

    detail = await refusal(image_host.url("/a"))

    assert detail == f"{image_host.url('/a')} redirected more than 3 times"
    assert image_host.paths == ["/a", "/b", "/c", "/d"]


async def test_refuses_a_body_declared_larger_than_max_bytes(image_host: ImageHost) -> None:
    image_host.pages["/big.png"] = Page(PNG + bytes(20_000))

    detail = await refusal(image_host.url("/big.png"), max_bytes=10_000)

    assert f"declares {len(PNG) + 20_000:,} bytes; the limit is 10,000" in detail


async def test_refuses_a_chunked_body_that_grows_past_max_bytes(image_host: ImageHost) -> None:
    image_host.pages["/big.png"] = Page(PNG + bytes(20_000), chunked=True, chunk_size=1000)

    detail = await refusal(image_host.url("/big.png"), max_bytes=10_000)

    assert "sent more than the limit of 10,000 bytes" in detail


async def test_refuses_a_server_slower_than_the_timeout(image_host: ImageHost) -> None:
    image_host.pages["/slow.png"] = Page(PNG, delay_seconds=5)
    started = time.monotonic()

    detail = await refusal(image_host.url("/slow.png"), timeout_seconds=0.5)

    assert "did not send an image within 0.5 seconds" in detail
    assert time.monotonic() - started < 1.5


async def test_refuses_a_server_that_trickles_past_the_deadline(image_host: ImageHost) -> None:
    # Each chunk comes well within httpx's read timeout; only the overall deadline stops this.
    chunk_size = len(PNG) // 20 + 1
    image_host.pages["/trickle.png"] = Page(
        PNG, chunked=True, chunk_size=chunk_size, chunk_delay_seconds=0.1
    )
    started = time.monotonic()

    detail = await refusal(image_host.url("/trickle.png"), timeout_seconds=0.5)

    assert "did not send an image within 0.5 seconds" in detail
    assert time.monotonic() - started < 1.5


async def test_refuses_an_error_status_and_names_it(image_host: ImageHost) -> None:
    detail = await refusal(image_host.url("/missing.png"))

    assert detail == f"{image_host.url('/missing.png')} answered 404 Not Found"


async def test_refuses_html_served_as_an_image(image_host: ImageHost) -> None:
    html = b"<!doctype html><title>Sign in</title>"
    image_host.pages["/login.png"] = Page(html, headers={"content-type": "image/png"})

    detail = await refusal(image_host.url("/login.png"))

    assert "did not send a PNG, JPEG or WebP image" in detail


async def test_refuses_an_encoded_body(image_host: ImageHost) -> None:
    image_host.pages["/cat.png.gz"] = Page(gzip.compress(PNG), headers={"content-encoding": "gzip"})

    assert "sent a gzip-encoded body" in await refusal(image_host.url("/cat.png.gz"))
    assert image_host.received[0].headers["accept-encoding"] == "identity"


async def test_refuses_a_url_nothing_listens_on() -> None:
    async with ImageHost() as gone:
        url = gone.url("/cat.png")

    assert f"{url} could not be fetched" in await refusal(url)


async def test_tries_the_next_address_when_one_refuses_the_connection(
    image_host: ImageHost, resolver: FakeResolver
) -> None:
    # The host listens on 127.0.0.1 only, so 127.0.0.2 refuses the connection.
    resolver.answer("dual.example", ["127.0.0.2", "127.0.0.1"])
    url = image_host.url("/cat.png", host="dual.example")

    image = await fetch_image(url, UrlPolicy(allow=("127.0.0.0/8",)), max_bytes=MAX_BYTES)

    assert image.data == PNG
    assert image_host.received[0].headers["host"] == f"dual.example:{image_host.port}"


async def test_a_cidr_allow_entry_exempts_its_network(image_host: ImageHost) -> None:
    policy = UrlPolicy(allow=("127.0.0.0/8",))

    image = await fetch_image(image_host.url("/cat.png"), policy, max_bytes=MAX_BYTES)

    assert image.data == PNG


async def test_a_host_allow_entry_exempts_that_host_only(image_host: ImageHost) -> None:
    policy = UrlPolicy(allow=("localhost",))
    url = image_host.url("/cat.png", host="localhost")

    image = await fetch_image(url, policy, max_bytes=MAX_BYTES)

    assert image.data == PNG
    assert image_host.received[0].headers["host"] == f"localhost:{image_host.port}"
    assert "a loopback address" in await refusal(image_host.url("/cat.png"), policy)


def test_policy_from_setting_reads_hosts_and_cidrs() -> None:
    policy = UrlPolicy.from_setting(" images.internal, 10.0.0.0/8,,127.0.0.1 ")

    assert policy.allow == ("images.internal", "10.0.0.0/8", "127.0.0.1")
    assert policy.allows("IMAGES.internal.", ipaddress.ip_address("192.168.0.9"), 443)
    assert policy.allows("other.example", ipaddress.ip_address("10.9.9.9"), 8080)
    assert not policy.allows("other.example", ipaddress.ip_address("192.168.0.9"), 443)
    assert UrlPolicy.from_setting(None) == UrlPolicy.from_setting("") == UrlPolicy()


def test_policy_reads_entries_with_a_port_as_that_port_only() -> None:
    policy = UrlPolicy.from_setting(
        "127.0.0.2:18230, images.internal:8443, [fd00::7]:80, 10.0.0.0/8:9000, [fc00::/7]:81"
    )
    loopback, unique_local = ipaddress.ip_address("127.0.0.2"), ipaddress.ip_address("fd00::7")

    assert policy.allows("127.0.0.2", loopback, 18230)
    assert not policy.allows("127.0.0.2", loopback, 18231)
    assert policy.allows("images.internal", ipaddress.ip_address("10.1.1.1"), 8443)
    assert not policy.allows("images.internal", ipaddress.ip_address("192.168.1.1"), 443)
    assert policy.allows("fd00::7", unique_local, 80)
    assert policy.allows("fc00::1", ipaddress.ip_address("fc00::1"), 81)
    assert not policy.allows("fd00::7", unique_local, 443)
    assert policy.allows("other.internal", ipaddress.ip_address("10.2.3.4"), 9000)
    # An IPv6 address or network without brackets carries no port.
    assert UrlPolicy.from_setting("::1").allows("::1", ipaddress.ip_address("::1"), 8080)
    assert UrlPolicy.from_setting("fd00::/8").allows("x", unique_local, 1)


@pytest.mark.parametrize(
    "value",
    [
        "10.0.0.0/33",
        "*.example.com",
        "http://images.internal",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "images.internal:https",
        "images.internal:",
        "[::1]8080",
        "[images.internal]:80",
    ],
)
def test_policy_refuses_a_malformed_allow_entry(value: str) -> None:
    with pytest.raises(ValueError, match="neither a host name nor a CIDR"):
        UrlPolicy.from_setting(value)


def test_check_address_names_the_host_the_address_and_the_reason() -> None:
    private = ipaddress.ip_address("10.0.0.5")

    with pytest.raises(UrlRefused) as refused:
        check_address(private, UrlPolicy(), "hooks.example", 443)
    assert refused.value.detail == (
        f"hooks.example resolves to 10.0.0.5, a private address; {ALLOW_HINT}"
    )
    check_address(private, UrlPolicy(allow=("10.0.0.0/8",)), "hooks.example", 443)
    check_address(private, UrlPolicy(allow=("hooks.example",)), "hooks.example", 443)
    check_address(private, UrlPolicy(allow=("hooks.example:443",)), "hooks.example", 443)
    with pytest.raises(UrlRefused):
        check_address(private, UrlPolicy(allow=("hooks.example:8443",)), "hooks.example", 443)
    check_address(ipaddress.ip_address("93.184.216.34"), UrlPolicy(), "example.com", 443)
    check_address(ipaddress.ip_address("2606:4700:4700::1111"), UrlPolicy(), "one.one.one.one", 443)


async def test_a_host_port_allow_entry_exempts_that_port_only(image_host: ImageHost) -> None:
    async with ImageHost(pages={"/cat.png": Page(PNG)}) as other_port:
        policy = UrlPolicy.from_setting(f"127.0.0.1:{image_host.port}")

        image = await fetch_image(image_host.url("/cat.png"), policy, max_bytes=MAX_BYTES)
        detail = await refusal(other_port.url("/cat.png"), policy)

    assert image.data == PNG
    assert detail == (
        f"{other_port.url('/cat.png')} resolves to 127.0.0.1, a loopback address; {ALLOW_HINT}"
    )
    assert other_port.paths == []


async def test_a_redirect_to_another_port_of_an_allowed_host_is_refused(
    image_host: ImageHost,
) -> None:
    async with ImageHost(pages={"/cat.png": Page(PNG)}) as other_port:
        image_host.pages["/go"] = Page(status=302, headers={"location": other_port.url("/cat.png")})
        policy = UrlPolicy.from_setting(f"127.0.0.1:{image_host.port}")

        detail = await refusal(image_host.url("/go"), policy)

    assert detail.startswith(f"{image_host.url('/go')} redirected to a refused URL")
    assert other_port.paths == []


@pytest.mark.parametrize(
    ("url", "hinted"),
    [
        ("http://10.0.0.5/x.png", True),
        ("http://[::1]/x.png", True),
        ("http://100.64.0.1/x.png", True),
        ("http://169.254.169.254/latest/meta-data/", False),
        ("http://224.0.0.1/x.png", False),
    ],
)
async def test_an_internal_address_refusal_names_the_setting_that_allows_it(
    url: str, hinted: bool
) -> None:
    detail = await refusal(url, UrlPolicy())

    assert ("DARKROOM_URL_ALLOW" in detail) is hinted


async def test_resolve_checked_refuses_a_host_if_any_address_is_forbidden(
    resolver: FakeResolver,
) -> None:
    resolver.answer("mixed.example", ["93.184.216.34", "10.0.0.7"])

    with pytest.raises(UrlRefused) as refused:
        await resolve_checked(httpx.URL("https://mixed.example/cat.png"), UrlPolicy())

    assert refused.value.detail == (
        f"https://mixed.example/cat.png resolves to 10.0.0.7, a private address; {ALLOW_HINT}"
    )


async def test_resolve_checked_returns_every_allowed_address_once(resolver: FakeResolver) -> None:
    resolver.answer("cdn.example", ["93.184.216.34", "2606:2800:21f::1", "93.184.216.34"])

    addresses = await resolve_checked(httpx.URL("https://cdn.example/cat.png"), UrlPolicy())

    assert addresses == [
        ipaddress.ip_address("93.184.216.34"),
        ipaddress.ip_address("2606:2800:21f::1"),
    ]


def self_signed_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate for the DNS name `name` only (no IP address), and its key."""
    certificate, key = directory / "certificate.pem", directory / "key.pem"
    command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1"
    subject = ["-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"]
    files = ["-keyout", str(key), "-out", str(certificate)]
    subprocess.run([*command.split(), *subject, *files], check=True, capture_output=True)
    return certificate, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_https_names_the_original_host_for_sni_and_the_certificate(
    tmp_path: Path, resolver: FakeResolver
) -> None:
    certificate, key = self_signed_certificate(tmp_path, "images.example")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(certificate, key)
    server_names: list[str | None] = []
    server_context.sni_callback = lambda _socket, name, _context: server_names.append(name)
    resolver.answer("images.example", ["127.0.0.1"])
    resolver.answer("other.example", ["127.0.0.1"])
    policy = UrlPolicy(allow=("127.0.0.0/8",))
    trusting = ssl.create_default_context(cafile=certificate)

    async with (
        ImageHost(pages={"/cat.png": Page(PNG)}, ssl_context=server_context) as host,
        httpx.AsyncClient(verify=trusting) as http,
    ):
        image = await fetch_image(
            host.url("/cat.png", "images.example"), policy, max_bytes=MAX_BYTES, client=http
        )
        # The same server and address under a name its certificate does not carry.
        detail = await refusal(host.url("/cat.png", "other.example"), policy, client=http)

    assert image.data == PNG
    assert server_names[0] == "images.example"
    assert host.received[0].headers["host"] == f"images.example:{host.port}"
    assert "could not be fetched" in detail
    assert "CERTIFICATE_VERIFY_FAILED" in detail


def test_the_setting_builds_the_policy_and_refuses_a_typo_at_start_up(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, url_allow="127.0.0.1, 10.0.0.0/8, 127.0.0.2:18230")

    assert settings.url_policy == UrlPolicy(allow=("127.0.0.1", "10.0.0.0/8", "127.0.0.2:18230"))
    with pytest.raises(ValueError, match="url_allow"):
        Settings(data_dir=tmp_path, url_allow="10.0.0.0/33")
