"""CPython only: ``packb``/``unpackb`` on the C ``msgpack`` package, held to purepack's rules.

Imported by ``transport.codec`` on CPython; kept out of codec.py so that the
board, which never runs it, does not pay ~5 KB of RAM for its bytecode.

The C package needs three guards to fail exactly where purepack fails
(always with CodecError):

- ext types, timestamps included, are refused (``max_ext_len=0`` and an
  ``ext_hook`` that refuses), and ``ExtType``/``Timestamp`` values are refused
  when packing;
- nesting deeper than MAX_DEPTH is refused both ways. The check is cheap: one
  ``bytes.translate`` marks the bytes that can be container headers (and ext
  headers); only when more than MAX_DEPTH of them (or any ext header) are
  present is the object walked to find out for sure;
- trailing bytes are refused (``unpackb`` decodes exactly one value).
"""

import threading

import msgpack as _msgpack

from transport.errors import CodecError
from transport.purepack import MAX_DEPTH


def _refuse_ext(code, data):
    raise CodecError("msgpack: ext type %d is not supported" % code)


# A Packer per thread: building one per call costs more than the packing,
# and one shared Packer is not safe if Python code runs mid-pack (dict subclasses).
_local = threading.local()


# Translate table: container headers -> 1, ext headers -> 2, others -> 0.
# Nesting d needs d container headers, so at most MAX_DEPTH 1s means the
# depth is fine without looking at the object; a 2 may be an ext header
# (or just a byte inside a float), so the object is walked to be sure.
_CONTAINER_BYTES = bytes(list(range(0x80, 0xA0)) + [0xDC, 0xDD, 0xDE, 0xDF])
_EXT_BYTES = bytes([0xC7, 0xC8, 0xC9, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8])
_TABLE = bytes(1 if i in _CONTAINER_BYTES else 2 if i in _EXT_BYTES else 0 for i in range(256))
_SCALARS = frozenset((type(None), bool, int, float, str, bytes, bytearray, memoryview))
_SCALAR_BASES = (int, float, str, bytes, bytearray)


_EXT_TYPES = (_msgpack.ExtType, _msgpack.Timestamp)


def _check(obj, depth):
    """Refuse what purepack would refuse: types outside the subset, nesting too deep."""
    if isinstance(obj, _EXT_TYPES):
        raise CodecError("msgpack: cannot pack type %s (ext types are not supported)" % type(obj).__name__)
    if isinstance(obj, (list, tuple)):
        items = obj
    elif isinstance(obj, dict):
        items = [x for kv in obj.items() for x in kv]
    elif type(obj) in _SCALARS or isinstance(obj, _SCALAR_BASES):
        return
    else:
        raise CodecError("msgpack: cannot pack type %s" % type(obj).__name__)
    if depth >= MAX_DEPTH:
        raise CodecError("msgpack: nesting deeper than %d" % MAX_DEPTH)
    for item in items:
        if type(item) not in _SCALARS:
            _check(item, depth + 1)


def _check_fast(obj, depth):
    """_check with a shortcut: a container whose items are all plain scalars is settled by one
    C-level pass (set.issuperset over map(type, ...)) instead of a Python loop; anything else
    goes through _check, so what is refused, and why, is unchanged."""
    t = type(obj)
    if t is dict:
        if _SCALARS.issuperset(map(type, obj)) and _SCALARS.issuperset(map(type, obj.values())):
            if depth >= MAX_DEPTH:
                raise CodecError("msgpack: nesting deeper than %d" % MAX_DEPTH)
            return
        items = [x for kv in obj.items() for x in kv]
    elif t is list:
        if _SCALARS.issuperset(map(type, obj)):
            if depth >= MAX_DEPTH:
                raise CodecError("msgpack: nesting deeper than %d" % MAX_DEPTH)
            return
        items = obj
    else:
        return _check(obj, depth)
    if depth >= MAX_DEPTH:
        raise CodecError("msgpack: nesting deeper than %d" % MAX_DEPTH)
    for item in items:
        if type(item) not in _SCALARS:
            _check_fast(item, depth + 1)


def packb(obj):
    """Encode `obj` to msgpack bytes; raises CodecError for anything outside the subset."""
    try:
        pack = getattr(_local, "pack", None)
        if pack is None:
            pack = _local.pack = _msgpack.Packer(use_bin_type=True, autoreset=True).pack
        out = pack(obj)
    except CodecError:
        raise
    except OverflowError as exc:
        raise CodecError("msgpack: int out of range (-2**63 .. 2**64-1): %s" % exc) from None
    except UnicodeError:
        raise CodecError("msgpack: str is not encodable as UTF-8") from None
    except (TypeError, ValueError) as exc:
        # ValueError here is the C packer's own recursion limit (a cycle or deep nesting).
        if "recursion" in str(exc):
            raise CodecError("msgpack: nesting deeper than %d" % MAX_DEPTH) from None
        raise CodecError("msgpack: cannot pack: %s" % exc) from None
    except Exception as exc:  # any other failure of the C packer is still a codec error
        raise CodecError("msgpack: cannot pack: %s: %s" % (type(exc).__name__, exc)) from None
    marks = out.translate(_TABLE)
    if 2 in marks or marks.count(1) > MAX_DEPTH:
        _check_fast(obj, 0)
    return out


def unpackb(data):
    """Decode exactly one msgpack value from bytes/bytearray/memoryview; raises CodecError."""
    if type(data) is not bytes and not isinstance(data, (bytes, bytearray)):
        if not isinstance(data, memoryview):
            raise CodecError("msgpack: expected bytes, got %s" % type(data).__name__)
        data = data.tobytes()
    try:
        obj = _msgpack.unpackb(
            data,
            strict_map_key=False,
            max_ext_len=0,
            ext_hook=_refuse_ext,
        )
    except CodecError:
        raise
    except _msgpack.ExtraData:
        raise CodecError("msgpack: trailing bytes after the value") from None
    except UnicodeError:
        raise CodecError("msgpack: str is not valid UTF-8") from None
    except TypeError as exc:
        raise CodecError("msgpack: unhashable map key: %s" % exc) from None
    except Exception as exc:  # ValueError, OutOfData, FormatError, StackError, ...
        raise CodecError("msgpack: cannot decode: %s: %s" % (type(exc).__name__, exc)) from None
    # Ext headers were refused by the decoder itself; only the depth is left.
    if len(data) > MAX_DEPTH and data.translate(_TABLE).count(1) > MAX_DEPTH:
        _check_fast(obj, 0)
    return obj
