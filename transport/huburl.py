"""CPython only: the hub address a tool, the hub or a bundle is given (tcp://HOST:PORT, tls://HOST:PORT).

Pure text parsing, no I/O: the blocking client adapters that once sat next to it were unused.
"""


def uses_tls(url):
    """tls://HOST:PORT asks for TLS on the hub's TCP listener (serve --tls-cert/--tls-key)."""
    return isinstance(url, str) and url.lower().startswith("tls://")


def parse_hub_url(url):
    """``"tcp://HOST:PORT"`` or ``"HOST:PORT"`` -> (host, port); ValueError with the reason otherwise.

    IPv6 hosts go in brackets: ``tcp://[::1]:7700``.
    """
    if not isinstance(url, str) or not url:
        raise ValueError("hub URL must be a non-empty string like tcp://HOST:PORT, got %r" % (url,))
    rest = url
    if "://" in url:
        scheme, rest = url.split("://", 1)
        if scheme.lower() not in ("tcp", "tls"):
            raise ValueError("hub URL %r: scheme must be tcp:// or tls:// (got %s://)" % (url, scheme))
    rest = rest.rstrip("/")
    if rest.startswith("["):
        host, sep, port_text = rest[1:].partition("]:")
        if not sep:
            raise ValueError("hub URL %r: expected [IPv6]:PORT" % (url,))
    else:
        host, sep, port_text = rest.rpartition(":")
        if not sep or ":" in host:
            raise ValueError("hub URL %r: expected tcp://HOST:PORT (IPv6 hosts in brackets)" % (url,))
    if not host:
        raise ValueError("hub URL %r: missing host" % (url,))
    if not (port_text.isascii() and port_text.isdigit()) or not 0 <= int(port_text) < 65536:
        raise ValueError("hub URL %r: port must be a number 0..65535, got %r" % (url, port_text))
    return host, int(port_text)
