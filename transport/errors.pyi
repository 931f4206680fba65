# Types of transport/errors.py for mypy (the .py is board code and stays unannotated).
# tools/bundle.py packs modules by name (firmware.micropython.bundle_files), never this file.

E_MALFORMED: int
E_UNKNOWN_KIND: int
E_BAD_FIELD: int
E_NOT_AUTHENTICATED: int
E_AUTH_FAILED: int
E_UNSUPPORTED_VERSION: int
E_NOT_FOUND: int
E_CONFLICT: int
E_FORBIDDEN: int
E_RATE_LIMITED: int
E_TOO_LARGE: int
E_INVALID_STATE: int
E_TIMEOUT: int
E_INTERNAL: int
E_OVERLOADED: int

ERROR_NAMES: dict[int, str]  # CPython only

def error_name(code: object) -> str | None: ...

class EvhubError(Exception):
    code: int
    text: str
    def __init__(self, code: int, text: str) -> None: ...

class WireError(EvhubError):
    def __init__(self, text: str, code: int = ...) -> None: ...

class CodecError(WireError): ...
class FrameError(WireError): ...

class ProtocolError(WireError):
    seq: int
    def __init__(self, code: int, text: str, seq: int = ...) -> None: ...
