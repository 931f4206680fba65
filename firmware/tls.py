"""TLS for the board's hub link (``"hub": {"host", "port", "tls": true, "ca": "hub-ca.pem"}``), with the
port's ``ssl`` module (mbedTLS). board.py imports this only for a hub with ``"tls": true``, as it
imports evse.py only with an ``"evse"`` map: a board on plain TCP or a UART pays no heap for it.

The CA file (PEM or DER) is handed to ``load_verify_locations`` as DER, the form every port's
mbedTLS parses (the unix port's parses no PEM). mbedTLS checks the certificate's dates against the
board's clock: a board whose RTC was never set (year 2000) asks NTP (``ntptime``) first, else the
hub's certificate must be valid from before the RTC's epoch. Without ``ca`` the link is encrypted
but the hub is not authenticated (logged as a warning).
"""

import binascii
import time

RTC_MIN_YEAR = 2024  # a clock before this was never set: certificate dates cannot be checked


def text(exc):
    """An exception as one line (mbedTLS messages come wrapped in newlines)."""
    return " ".join(str(exc).split()) or repr(exc)


def der_certs(data):
    """The DER bytes of every certificate in PEM `data`; DER data is returned as the only one."""
    if b"-----BEGIN" not in data:
        return [data]
    out = []
    b64 = None
    for line in data.split(b"\n"):
        line = line.strip()
        if line.startswith(b"-----BEGIN CERTIFICATE"):
            b64 = []
        elif line.startswith(b"-----END"):
            if b64 is not None:
                out.append(binascii.a2b_base64(b"".join(b64)))
            b64 = None
        elif b64 is not None and line:
            b64.append(line)
    return out


def context(hub, log):
    """The SSLContext for a hub config with "tls": true; ValueError for a bad "ca" file."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca = hub.get("ca")
    if ca:
        try:
            with open(ca, "rb") as f:
                ders = der_certs(f.read())
            for der in ders:
                ctx.load_verify_locations(cadata=der)
        except (OSError, ValueError) as exc:
            raise ValueError("hub ca %s: %s" % (ca, text(exc)))
        if not ders:
            raise ValueError("hub ca %s: no certificate in it" % ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
        log("warning", "hub TLS without a ca: encrypted, but the hub's certificate is not checked")
    return ctx


def set_clock(log):
    """Certificate dates need a set clock: ask NTP when the RTC still counts from its epoch."""
    if time.gmtime()[0] >= RTC_MIN_YEAR:
        return True
    try:
        import ntptime

        ntptime.settime()
    except Exception as exc:  # no NTP module or no answer: the TLS handshake will say what failed
        log("warning", "clock not set (%s) and NTP failed: %s" % (time.gmtime()[0], text(exc)))
        return False
    log("info", "clock set from NTP for TLS: %d-%02d-%02d" % time.gmtime()[:3])
    return True
