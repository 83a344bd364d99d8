"""What the queue vendors share: which vendor-named URLs may receive the API key."""

import pytest

from app.errors import ProviderMalformedResponse
from app.providers.polling import check_same_site
from app.providers.transport import VendorHTTP

BASE_URL = "https://api.bfl.ai"


def vendor(base_url: str = BASE_URL) -> VendorHTTP:
    return VendorHTTP("bfl", base_url, headers={"x-key": "bfl-test-key"})


@pytest.mark.parametrize(
    "url",
    [
        "https://api.bfl.ai/v1/get_result?id=1",
        "https://api.bfl.ai:443/v1/get_result?id=1",
        "https://api.eu1.bfl.ai/v1/get_result?id=1",
    ],
    ids=["same-host", "explicit-default-port", "regional-sibling"],
)
def test_a_url_on_the_vendor_site_over_https_is_accepted(url: str) -> None:
    assert check_same_site(vendor(), url, "polling URL") == url


@pytest.mark.parametrize(
    "url",
    [
        "http://api.bfl.ai/v1/get_result?id=1",
        "http://api.bfl.ai:443/v1/get_result?id=1",
        "https://api.bfl.ai:8443/v1/get_result?id=1",
        "ftp://api.bfl.ai/v1/get_result?id=1",
        "https://collector.example/v1/get_result?id=1",
        "https://api.bfl.ai.collector.example/v1/get_result?id=1",
        "https://[::1",
        None,
    ],
    ids=[
        "plain-http",
        "plain-http-on-443",
        "other-port",
        "other-scheme",
        "other-host",
        "lookalike-host",
        "unparseable",
        "missing",
    ],
)
def test_a_url_off_the_vendor_site_is_refused(url: object) -> None:
    with pytest.raises(ProviderMalformedResponse, match="outside its own site"):
        check_same_site(vendor(), url, "polling URL")


def test_a_plain_http_base_accepts_its_own_port_only() -> None:
    http = vendor("http://127.0.0.1:8123")

    assert check_same_site(http, "http://127.0.0.1:8123/v1/get_result", "polling URL")
    with pytest.raises(ProviderMalformedResponse):
        check_same_site(http, "http://127.0.0.1:8124/v1/get_result", "polling URL")
