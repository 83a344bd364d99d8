"""The one way Darkroom fetches a URL a caller gave it: http(s) only, to globally reachable
addresses checked after DNS resolution and again on every redirect, connecting to the very address
that was checked, within time and size limits, and keeping only bytes that sniff as an image.

The address rules (`UrlPolicy`, `check_address`, `resolve_checked`, `check_url`) are shared with
webhook delivery (`post_checked`), so both refuse the same places for the same reasons.
"""

import asyncio
import contextlib
import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import httpx

from app.errors import InvalidInput
from app.imaging.codecs import sniff_format

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
REQUEST_HEADERS = {
    "Accept": "image/png, image/jpeg, image/webp",
    # Images are compressed already; an encoded body could inflate far past max_bytes.
    "Accept-Encoding": "identity",
}

# Cloud metadata services hand out credentials here: AWS (IPv4, IPv6 and the ECS task endpoint),
# GCP and Azure (the same 169.254.169.254), Alibaba and Oracle.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(text)
    for text in (
        "169.254.169.254",
        "169.254.170.2",
        "fd00:ec2::254",
        "100.100.100.200",
        "192.0.0.192",
    )
)
SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT, RFC 6598
IPV6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")


class AddressRule(NamedTuple):
    """One kind of address the fetcher refuses; `internal` when a trusted service of the
    operator's own may live there, so a refusal says how to allow it."""

    reason: str
    applies: Callable[[IPAddress], bool]
    internal: bool = False


# Checked in order, so a detail names the most specific reason (a metadata address is also
# link-local). `is_global` alone is not enough on Python 3.11: it passes multicast, IPv6
# site-local and a few special-purpose ranges.
ADDRESS_RULES: tuple[AddressRule, ...] = (
    AddressRule("a cloud metadata address", lambda address: address in METADATA_ADDRESSES),
    AddressRule("a loopback address", lambda address: address.is_loopback, internal=True),
    AddressRule("an unspecified address", lambda address: address.is_unspecified),
    AddressRule("a link-local address", lambda address: address.is_link_local),
    AddressRule(
        "a shared (carrier-grade NAT) address",
        lambda address: address in SHARED_ADDRESS_SPACE,
        internal=True,
    ),
    AddressRule("a multicast address", lambda address: address.is_multicast),
    AddressRule("a private address", lambda address: address.is_private, internal=True),
    AddressRule("a reserved address", lambda address: address.is_reserved),
    AddressRule(
        "an IPv6 address outside global unicast (2000::/3)",
        lambda address: address.version == 6 and address not in IPV6_GLOBAL_UNICAST,
    ),
    AddressRule("an address that is not globally reachable", lambda address: not address.is_global),
)
ALLOW_HINT = "a trusted internal host can be allowed with DARKROOM_URL_ALLOW (host or host:port)"

# Letters, digits and hyphens, plus the underscores some real hosts carry; 1 to 63 per label.
DNS_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
# One part of a numeric IPv4 host as browsers read it: hex after 0x, octal after a 0, else decimal.
IPV4_NUMBER = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")


class UrlRefused(InvalidInput):
    """A URL Darkroom will not fetch; the detail says why."""

    status, slug, title = 422, "url-refused", "URL refused"


class AllowEntry(NamedTuple):
    """One exemption: a host name or a network, on one port or (`port` None) on every port."""

    place: str | IPNetwork
    port: int | None


@dataclass(frozen=True)
class UrlPolicy:
    """Hosts and CIDRs exempt from the address rules, each on every port or on one, for trusted
    internal services and for tests that serve images locally; the default exempts nothing."""

    allow: tuple[str, ...] = ()
    _entries: tuple[AllowEntry, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Parsed once, here, so a mistyped DARKROOM_URL_ALLOW stops the process at start-up.
        object.__setattr__(self, "_entries", tuple(_allow_entry(entry) for entry in self.allow))

    @classmethod
    def from_setting(cls, value: str | None) -> "UrlPolicy":
        """The policy a `DARKROOM_URL_ALLOW` value names: comma-separated host names, addresses
        or CIDRs, each with `:port` to exempt that port only (an IPv6 one then in brackets)."""
        entries = (entry.strip() for entry in (value or "").split(","))
        return cls(allow=tuple(entry for entry in entries if entry))

    def allows(self, host: str, address: IPAddress, port: int) -> bool:
        """Whether an entry names `host`, or a network holding `address`, on `port`."""
        name = _host_key(host)
        return any(
            entry.port in (None, port)
            and (entry.place == name if isinstance(entry.place, str) else address in entry.place)
            for entry in self._entries
        )


@dataclass(frozen=True)
class FetchedImage:
    """An image fetched from a URL: where it finally came from, its bytes and sniffed format."""

    url: str
    data: bytes
    format: str


def check_address(address: IPAddress, policy: UrlPolicy, host: str, port: int) -> None:
    """Raise UrlRefused unless `address` (which `host` resolved to) is globally reachable or
    exempted by `policy` on `port`."""
    if reason := _refusal(address, policy, host, port):
        raise UrlRefused(f"{host} {reason}")


async def resolve_checked(url: httpx.URL, policy: UrlPolicy) -> list[IPAddress]:
    """The addresses `url` may be fetched from; raises UrlRefused if its scheme, credentials, port
    or host are unacceptable, or if any address its host resolves to breaks the rules."""
    host = _checked_host(url)
    port = url.port or DEFAULT_PORTS[url.scheme]
    literal = _literal_address(url, host)
    addresses = [literal] if literal is not None else await _resolve(url, host)
    for address in addresses:
        # Every address, not just the first: the connection may fall back to any of them.
        if reason := _refusal(address, policy, host, port):
            raise UrlRefused(f"{url} {reason}")
    return addresses


async def check_url(text: str, policy: UrlPolicy) -> list[IPAddress]:
    """`resolve_checked` for a URL given as text, as a caller wrote it; raises UrlRefused if it
    does not parse or breaks the rules."""
    return await resolve_checked(_parse_url(text), policy)


async def post_checked(
    url: str,
    policy: UrlPolicy,
    *,
    content: bytes,
    headers: dict[str, str],
    timeout_seconds: float = 10.0,
    client: httpx.AsyncClient | None = None,
) -> httpx.Response:
    """POST `content` to an untrusted URL under the address rules, connecting to the checked
    address and following no redirect; the response, its body unread and closed. Raises
    UrlRefused when the URL is refused, and httpx's errors (or TimeoutError) when the request
    fails."""
    start = _parse_url(url)
    async with asyncio.timeout(timeout_seconds), _http_client(client, timeout_seconds) as http:
        addresses = await resolve_checked(start, policy)
        response = await _open(http, start, addresses, "POST", headers, content)
        await response.aclose()
    return response


async def fetch_image(
    url: str,
    policy: UrlPolicy,
    *,
    max_bytes: int,
    timeout_seconds: float = 10.0,
    max_redirects: int = 3,
    client: httpx.AsyncClient | None = None,
) -> FetchedImage:
    """Fetch a PNG, JPEG or WebP image from an untrusted URL under the address rules and limits;
    raises UrlRefused saying why when it will not or cannot."""
    start = _parse_url(url)
    try:
        # The overall deadline also bounds DNS and a server that trickles bytes, which httpx's
        # per-operation timeouts alone would let run on.
        async with asyncio.timeout(timeout_seconds), _http_client(client, timeout_seconds) as http:
            final_url, data = await _follow(http, start, policy, max_bytes, max_redirects)
    except (TimeoutError, httpx.TimeoutException):
        raise UrlRefused(
            f"{url} did not send an image within {timeout_seconds:g} seconds"
        ) from None
    except httpx.HTTPError as exc:
        raise UrlRefused(f"{url} could not be fetched: {exc or type(exc).__name__}") from None
    image_format = sniff_format(data)
    if image_format is None:
        raise UrlRefused(f"{final_url} did not send a PNG, JPEG or WebP image")
    return FetchedImage(str(final_url), data, image_format)


def _parse_url(text: str) -> httpx.URL:
    try:
        return httpx.URL(text)
    except httpx.InvalidURL as exc:
        # httpx itself rejects dotted quads with octal-looking parts such as `0177.0.0.1`.
        raise UrlRefused(f"{text} is not a valid URL: {exc}") from None


def _http_client(
    client: httpx.AsyncClient | None, timeout_seconds: float
) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]:
    # A caller's client is used as it is, its proxy settings and connection pool included.
    if client is not None:
        return contextlib.nullcontext(client)
    # Not trust_env: neither a proxy nor .netrc credentials from the environment belong on
    # requests to hosts that callers chose.
    return httpx.AsyncClient(timeout=timeout_seconds, trust_env=False)


async def _follow(
    http: httpx.AsyncClient,
    url: httpx.URL,
    policy: UrlPolicy,
    max_bytes: int,
    max_redirects: int,
) -> tuple[httpx.URL, bytes]:
    start = url
    addresses = await resolve_checked(url, policy)
    redirects = 0
    while True:
        async with contextlib.aclosing(await _open(http, url, addresses)) as response:
            target = _redirect_target(url, response)
            if target is None:
                return url, await _read_body(url, response, max_bytes)
        redirects += 1
        if redirects > max_redirects:
            raise UrlRefused(f"{start} redirected more than {max_redirects} times")
        addresses = await _check_redirect(url, target, policy)
        url = target


async def _open(
    http: httpx.AsyncClient,
    url: httpx.URL,
    addresses: list[IPAddress],
    method: str = "GET",
    headers: dict[str, str] = REQUEST_HEADERS,
    content: bytes | None = None,
) -> httpx.Response:
    # Like any client, try the host's next address when one does not take the connection.
    for address in addresses[:-1]:
        with contextlib.suppress(httpx.ConnectError):
            return await _send(http, url, address, method, headers, content)
    return await _send(http, url, addresses[-1], method, headers, content)


async def _send(
    http: httpx.AsyncClient,
    url: httpx.URL,
    address: IPAddress,
    method: str = "GET",
    headers: dict[str, str] = REQUEST_HEADERS,
    content: bytes | None = None,
) -> httpx.Response:
    # The request goes to the checked address itself, so no second DNS lookup can rebind the
    # name to somewhere else; the server still sees the original Host. For https, httpcore's
    # `sni_hostname` extension makes TLS send the original name as SNI and verify the
    # certificate against it rather than against the address.
    request = http.build_request(
        method,
        url.copy_with(host=str(address)),
        headers=headers | {"Host": url.netloc.decode("ascii")},
        content=content,
        extensions={"sni_hostname": url.raw_host.decode("ascii")},
    )
    return await http.send(request, stream=True, follow_redirects=False)


def _redirect_target(url: httpx.URL, response: httpx.Response) -> httpx.URL | None:
    if response.status_code not in REDIRECT_STATUSES:
        return None
    location = response.headers.get("location")
    if not location:
        raise UrlRefused(f"{url} answered {response.status_code} without a Location")
    try:
        return url.join(location).copy_with(fragment=None)
    except httpx.InvalidURL as exc:
        raise UrlRefused(f"{url} redirected to an invalid URL: {exc}") from None


async def _check_redirect(
    source: httpx.URL, target: httpx.URL, policy: UrlPolicy
) -> list[IPAddress]:
    try:
        return await resolve_checked(target, policy)
    except UrlRefused as exc:
        raise UrlRefused(f"{source} redirected to a refused URL: {exc.detail}") from None


async def _read_body(url: httpx.URL, response: httpx.Response, max_bytes: int) -> bytes:
    if not response.is_success:
        raise UrlRefused(f"{url} answered {response.status_code} {response.reason_phrase}")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise UrlRefused(f"{url} sent a {encoding}-encoded body; images must come unencoded")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise UrlRefused(f"{url} declares {int(declared):,} bytes; the limit is {max_bytes:,}")
    data = bytearray()
    async for chunk in response.aiter_raw():
        data += chunk
        if len(data) > max_bytes:
            raise UrlRefused(f"{url} sent more than the limit of {max_bytes:,} bytes")
    return bytes(data)


def _checked_host(url: httpx.URL) -> str:
    if url.scheme not in ALLOWED_SCHEMES:
        raise UrlRefused(f"{url} is not an http or https URL")
    if url.userinfo:
        public = url.copy_with(userinfo=b"")
        raise UrlRefused(f"{public} carries a user name or password, which is not accepted")
    if url.port is not None and not 1 <= url.port <= 65535:
        raise UrlRefused(f"{url} has port {url.port}, outside 1-65535")
    host = url.raw_host.decode("ascii")
    if not host:
        raise UrlRefused(f"{url} has no host")
    return host


def _literal_address(url: httpx.URL, host: str) -> IPAddress | None:
    try:
        if ":" in host:  # httpx lets a colon into the host only for a bracketed IPv6 literal
            address = ipaddress.IPv6Address(host)
            if address.scope_id:
                raise ValueError("zone index")
            return address
        return _numeric_ipv4(host)
    except ValueError:
        raise UrlRefused(f"{url} has a host that is not a valid IP address") from None


def _numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address a browser reads in a host that ends in a number (`2130706433`, `0x7f.1`,
    `127.1`, `0177.1`), per the WHATWG URL standard; None for a host name; ValueError if the
    numbers are malformed."""
    parts = host.split(".")
    if len(parts) > 1 and not parts[-1]:
        parts.pop()
    if not IPV4_NUMBER.fullmatch(parts[-1]):
        return None
    if len(parts) > 4 or not all(IPV4_NUMBER.fullmatch(part) for part in parts):
        raise ValueError(f"malformed numeric host {host!r}")
    *leading, last = [_ipv4_number(part) for part in parts]
    if any(number > 255 for number in leading) or last >= 256 ** (4 - len(leading)):
        raise ValueError(f"numeric host {host!r} is out of range")
    value = sum(number << 8 * (3 - index) for index, number in enumerate(leading))
    return ipaddress.IPv4Address(value + last)


def _ipv4_number(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8)
    return int(part)


async def _resolve(url: httpx.URL, host: str) -> list[IPAddress]:
    if not _is_dns_name(host):
        raise UrlRefused(f"{url} has a host that is neither a DNS name nor an IP address")
    loop = asyncio.get_running_loop()
    try:
        # asyncio runs the blocking getaddrinfo in its default executor.
        infos = await loop.getaddrinfo(host, url.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UrlRefused(f"{url} has a host that does not resolve ({exc.strerror})") from None
    # A link-local IPv6 answer may carry a zone (`fe80::1%eth0`); the rules judge the address.
    texts = (str(info[4][0]).partition("%")[0] for info in infos)
    return list(dict.fromkeys(ipaddress.ip_address(text) for text in texts))


def _is_dns_name(host: str) -> bool:
    name = _host_key(host)
    return 0 < len(name) <= 253 and all(DNS_LABEL.fullmatch(label) for label in name.split("."))


def _host_key(host: str) -> str:
    return host.lower().removesuffix(".")


def _allow_entry(entry: str) -> AllowEntry:
    place, port = _split_port(entry)
    port_ok = port is None or (port.isdigit() and 1 <= int(port) <= 65535)
    try:
        network: IPNetwork | None = ipaddress.ip_network(place, strict=False)
    except ValueError:
        network = None
    # Brackets hold an IPv6 address or network, never a name.
    name_ok = not entry.startswith("[") and _is_dns_name(place)
    if not port_ok or (network is None and not name_ok):
        raise ValueError(
            f"URL allow entry {entry!r} is neither a host name nor a CIDR, "
            "with or without a :port from 1 to 65535"
        )
    exempt = network if network is not None else _host_key(place)
    return AllowEntry(exempt, int(port) if port else None)


def _split_port(entry: str) -> tuple[str, str | None]:
    """An entry's host part and port text: `host:port`, `[IPv6]:port`, or no port at all (an
    IPv6 address or network outside brackets keeps every colon)."""
    if entry.startswith("["):
        place, _, rest = entry[1:].partition("]")
        if not rest:
            return place, None
        # Anything but `:port` after the bracket leaves no host, which nothing accepts.
        return (place, rest[1:]) if rest.startswith(":") else ("", None)
    if entry.count(":") == 1:
        place, _, port = entry.partition(":")
        return place, port
    return entry, None


def _refusal(address: IPAddress, policy: UrlPolicy, host: str, port: int) -> str | None:
    if policy.allows(host, address, port):
        return None
    rule, carrier = _forbidding_rule(address)
    if rule is None:
        return None
    reason = rule.reason if carrier is None else f"which carries {carrier}, {rule.reason}"
    hint = f"; {ALLOW_HINT}" if rule.internal else ""
    return f"resolves to {address}, {reason}{hint}"


def _forbidding_rule(address: IPAddress) -> tuple[AddressRule | None, IPAddress | None]:
    """The first rule `address` breaks, judging first the IPv4 address it may carry (which is
    then returned too)."""
    embedded = _embedded_ipv4(address)
    if embedded is not None and (rule := _first_rule(embedded)):
        return rule, embedded
    return _first_rule(address), None


def _first_rule(address: IPAddress) -> AddressRule | None:
    return next((rule for rule in ADDRESS_RULES if rule.applies(address)), None)


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    # IPv4-mapped, NAT64 and 6to4 addresses all end up at the IPv4 address they carry.
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return address.ipv4_mapped or address.sixtofour
