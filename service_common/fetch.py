"""Fetch a photo from a URL the caller gave (``image_url=``), without letting callers reach
what only the server can (server-side request forgery).

- Only ``http`` and ``https``; at most ``max_redirects`` redirects; a connect / read timeout
  and a wall-clock limit for the whole download; at most ``max_bytes`` (the upload limit).
- Every connection, the first and each redirect's, is checked twice: the host's addresses
  before connecting, and the address actually connected to (so a DNS answer that changes
  in between gains nothing). Loopback, private, link-local, shared, multicast, reserved
  and unspecified addresses are refused unless the host name or a network containing the
  address is in the allow-list (``URL_ALLOWLIST``: host names and CIDR networks).
- Proxies from the environment are not used (the proxy's address would be checked instead
  of the target's).

Built on requests/urllib3: the check sits in the connection class, where a socket is made.
"""
from __future__ import annotations

import ipaddress
import socket
import time
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from core.errors import UserError


class URLError(UserError):
    """The URL cannot be used: malformed, refused by the policy, unreachable or too large."""

    code = "invalid_url"


class AddressPolicy:
    """Which addresses a fetch may connect to.

    Args:
        allowlist: host names and CIDR networks (``"images.internal"``, ``"10.0.0.0/8"``,
            ``"127.0.0.1"``) allowed even though they are not public.
    Raises:
        ValueError: an entry that is neither a network nor a host name.
    """

    def __init__(self, allowlist=()):
        self.hosts: set[str] = set()
        self.networks: list = []
        for entry in allowlist:
            entry = entry.strip().lower()
            if not entry:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                if not entry.replace(".", "").replace("-", "").isalnum():
                    raise ValueError(f"URL_ALLOWLIST entry {entry!r} is neither a host name "
                                     "nor an IP network") from None
                self.hosts.add(entry)

    def check(self, host: str, address: str) -> None:
        """Raise :class:`URLError` unless ``host`` at ``address`` may be reached."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if (host or "").lower().strip("[]") in self.hosts or any(ip in n for n in self.networks):
            return
        if not ip.is_global or ip.is_multicast:
            raise URLError(f"image_url: {host} resolves to {ip}, a non-public address; "
                           "the server does not fetch from those (add it to URL_ALLOWLIST "
                           "if it is meant)", code="url_not_allowed")


def _checked(base, policy: AddressPolicy):
    class Checked(base):
        def _new_conn(self):
            try:
                infos = socket.getaddrinfo(self._dns_host, self.port, type=socket.SOCK_STREAM)
            except socket.gaierror as exc:
                raise URLError(f"image_url: cannot resolve {self._dns_host} ({exc})",
                               code="url_fetch_failed") from None
            for info in infos:
                policy.check(self.host, info[4][0])
            sock = super()._new_conn()
            try:
                policy.check(self.host, sock.getpeername()[0])
            except URLError:
                sock.close()
                raise
            return sock
    return Checked


class _PolicyAdapter(HTTPAdapter):
    def __init__(self, policy: AddressPolicy):
        self._policy = policy
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        http = type("CheckedPool", (HTTPConnectionPool,),
                    {"ConnectionCls": _checked(HTTPConnection, self._policy)})
        https = type("CheckedTLSPool", (HTTPSConnectionPool,),
                     {"ConnectionCls": _checked(HTTPSConnection, self._policy)})
        self.poolmanager.pool_classes_by_scheme = {"http": http, "https": https}


def fetch(url: str, *, max_bytes: int, policy: AddressPolicy, timeout: float = 10.0,
          max_redirects: int = 3) -> bytes:
    """The body at ``url``, checked as the module docstring says.

    Raises:
        URLError (400): a bad URL, a refused address, too many redirects, a body over
            ``max_bytes``, a timeout, an HTTP error status or a connection failure.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise URLError(f"image_url must be an http:// or https:// URL, got {url[:200]!r}")
    session = requests.Session()
    session.trust_env = False
    session.max_redirects = max_redirects
    adapter = _PolicyAdapter(policy)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    started = time.monotonic()
    try:
        with session.get(url, stream=True, timeout=(min(timeout, 5.0), timeout),
                         headers={"User-Agent": "people-matting/1 (image_url)"}) as response:
            if response.status_code != 200:
                raise URLError(f"image_url answered {response.status_code}",
                               code="url_fetch_failed")
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise URLError(f"image_url is {int(length)} bytes, more than the limit of "
                               f"{max_bytes} (MAX_UPLOAD_MB)", code="url_too_large")
            body = bytearray()
            for chunk in response.iter_content(64 * 1024):
                body += chunk
                if len(body) > max_bytes:
                    raise URLError(f"image_url is more than the limit of {max_bytes} bytes "
                                   "(MAX_UPLOAD_MB)", code="url_too_large")
                if time.monotonic() - started > timeout:
                    raise URLError(f"image_url took more than {timeout:g} s to download "
                                   "(URL_TIMEOUT)", code="url_fetch_failed")
            return bytes(body)
    except requests.TooManyRedirects:
        raise URLError(f"image_url redirected more than {max_redirects} times",
                       code="url_fetch_failed") from None
    except requests.Timeout:
        raise URLError(f"image_url did not answer within {timeout:g} s (URL_TIMEOUT)",
                       code="url_fetch_failed") from None
    except requests.ConnectionError as exc:
        cause = exc.__context__
        while cause is not None and not isinstance(cause, URLError):
            cause = cause.__context__
        if isinstance(cause, URLError):  # our policy, raised inside urllib3
            raise cause from None
        raise URLError(f"image_url: cannot connect ({type(exc).__name__})",
                       code="url_fetch_failed") from None
    except requests.RequestException as exc:
        raise URLError(f"image_url: {type(exc).__name__}", code="url_fetch_failed") from None
