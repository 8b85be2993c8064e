"""SSRF policy: non-public destinations are refused before any connection is made."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from web_servers import LoopbackServer, fake_dns, hostile_routes, site_routes

from deepresearch.envs.web import FetchConfig, FetchError, PageFetcher, UnsafeUrlError, UrlPolicy, redact


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost:8080/admin",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[fd00:ec2::254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://192.168.1.1/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",  # 127.0.0.1 as one decimal number
        "http://100.64.0.1/",  # carrier-grade NAT
    ],
)
def test_default_policy_refuses_non_public_addresses(url: str, connections: list) -> None:
    with pytest.raises(UnsafeUrlError):
        UrlPolicy().check(url)
    with pytest.raises(FetchError, match="could not fetch"):
        PageFetcher().fetch(url)
    assert connections == []


def test_hostname_resolving_to_loopback_is_refused(connections: list) -> None:
    policy = UrlPolicy(resolver=fake_dns({"innocent.example": ["93.184.216.34", "127.0.0.1"]}))
    with pytest.raises(UnsafeUrlError, match="private or reserved"):
        policy.check("https://innocent.example/page")
    with pytest.raises(FetchError):
        PageFetcher(policy).fetch("https://innocent.example/page")
    assert connections == []


def test_public_address_passes_and_is_the_pinned_one() -> None:
    policy = UrlPolicy(resolver=fake_dns({"news.example": ["93.184.216.34"]}))
    target = policy.check("https://news.example:8443/a?b=1")
    assert (target.host, target.port, target.address, target.scheme) == ("news.example", 8443, "93.184.216.34", "https")


@pytest.mark.parametrize(
    "url", ["ftp://example.org/", "file:///etc/passwd", "gopher://x/", "http:///nohost", "http://user:pw@example.org/"]
)
def test_only_plain_http_and_https_urls(url: str) -> None:
    with pytest.raises(UnsafeUrlError):
        UrlPolicy(resolver=fake_dns({})).check(url)


def test_allowlist_networks_and_hosts() -> None:
    dns = fake_dns({"intranet.test": ["10.1.2.3"], "other.test": ["10.9.9.9"]})
    policy = UrlPolicy(allowlist=("127.0.0.1", "intranet.test"), resolver=dns)
    assert policy.check("http://127.0.0.1:9/").address == "127.0.0.1"
    assert policy.check("http://intranet.test/").address == "10.1.2.3"
    with pytest.raises(UnsafeUrlError):
        policy.check("http://other.test/")
    with pytest.raises(UnsafeUrlError, match="metadata"):
        UrlPolicy(allow_private=True).check("http://169.254.169.254/")


def test_redirect_from_allowed_host_to_disallowed_address_is_refused(connections: list) -> None:
    fetcher = PageFetcher(UrlPolicy(allowlist=("127.0.0.1",)))
    with LoopbackServer({**site_routes(), **hostile_routes()}) as server:
        for path, reason in [("/to-metadata", "metadata"), ("/to-private", "private or reserved")]:
            with pytest.raises(FetchError, match=reason):
                fetcher.fetch(server.url + path)
        assert fetcher.fetch(server.url + "/old/curie").final_url.endswith("/wiki/Marie_Curie")
    assert {address[0] for address in connections} == {"127.0.0.1"}


def test_redirect_hop_is_resolved_and_pinned_to_its_allowed_address(connections: list) -> None:
    dns = fake_dns({"localhost": ["127.0.0.1"]})
    fetcher = PageFetcher(UrlPolicy(allowlist=("127.0.0.1/32",), resolver=dns))
    with LoopbackServer(hostile_routes()) as server:
        # The hop to localhost resolves to an allow-listed address, so it is followed (port 80 is closed).
        with pytest.raises(FetchError, match="connection failed|HTTP"):
            fetcher.fetch(server.url + "/to-localhost")
    assert all(address[0] == "127.0.0.1" for address in connections)


def test_redact_removes_secrets_and_key_parameters() -> None:
    text = "GET https://api.example/search?q=x&api_key=abc123&key=zzz failed with token sk-SECRET"
    cleaned = redact(text, ("sk-SECRET",))
    assert "abc123" not in cleaned and "zzz" not in cleaned and "sk-SECRET" not in cleaned
    assert "q=x" in cleaned


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[str, str]:
    """A self-signed certificate for ``site.test`` made with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
         "-subj", "/CN=site.test", "-addext", "subjectAltName=DNS:site.test"],
        check=True, capture_output=True,
    )
    return cert, key


def test_https_is_pinned_to_the_checked_address_but_verified_by_host_name(certificate, connections) -> None:
    dns = fake_dns({"site.test": ["127.0.0.1"], "impostor.test": ["127.0.0.1"]})
    config = FetchConfig(ca_bundle=certificate[0])
    fetcher = PageFetcher(UrlPolicy(allowlist=("127.0.0.1",), resolver=dns), config)
    with LoopbackServer(site_routes(), tls=certificate) as server:
        page = fetcher.fetch(f"https://site.test:{server.port}/tides.txt")
        assert b"High tide" in page.body
        with pytest.raises(FetchError, match="TLS error"):
            fetcher.fetch(f"https://impostor.test:{server.port}/tides.txt")  # certificate is for site.test
    assert {address[0] for address in connections} == {"127.0.0.1"}
