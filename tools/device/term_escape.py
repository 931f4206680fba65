"""Render bytes and text from the wire on a terminal without letting them drive it.

A peer on a serial line (or anything it relays: station ids, firmware names, error texts)
could otherwise send terminal escapes to whoever runs `evhub console`: clear the screen,
rewrite earlier lines, set the window title, or (OSC 52) write the clipboard.

- ``escape_text`` for decoded frames: every control character (C0, DEL, C1) and every
  invisible format character (bidi overrides such as U+202E) becomes ``\\xNN``/``\\uNNNN``.
- ``RawFilter`` for --raw, a terminal for the board's REPL: its line editing needs CR, LF,
  TAB, BS and simple cursor/erase CSI sequences (``ESC [ 3 D``, ``ESC [ K``), so those pass;
  every other escape or control byte is shown escaped.
"""

import unicodedata

_KEEP_RAW = "\r\n\t\b"
_CSI_FINALS = "ABCDGHKm"  # cursor moves, erase in line, colours: what a REPL uses
_MAX_PENDING = 16  # an escape sequence longer than this is not one we pass


def _escape_char(c):
    o = ord(c)
    return "\\x%02x" % o if o < 0x100 else "\\u%04x" % o


def _unsafe(c):
    return unicodedata.category(c) in ("Cc", "Cf")


def escape_text(text):
    """``text`` with every control and format character escaped (one terminal line, inert)."""
    if text.isprintable():
        return text
    return "".join(_escape_char(c) if _unsafe(c) or c in "\u2028\u2029" else c for c in text)


class RawFilter:
    """Bytes from the board -> text safe to write to a terminal; keeps state across chunks."""

    def __init__(self):
        self._pending = ""
        self._decoder = __import__("codecs").getincrementaldecoder("utf-8")("replace")

    def feed(self, data):
        text = self._pending + self._decoder.decode(bytes(data))
        self._pending = ""
        out = []
        i, n = 0, len(text)
        while i < n:
            c = text[i]
            if c == "\x1b":
                if i + 1 >= n or (text[i + 1] == "[" and not self._complete(text, i + 2)):
                    if n - i <= _MAX_PENDING:  # maybe split across reads: wait for the rest
                        self._pending = text[i:]
                        break
                end = self._csi_end(text, i)
                if end:
                    out.append(text[i:end])
                    i = end
                    continue
                out.append("\\x1b")
            elif c in _KEEP_RAW or not _unsafe(c):
                out.append(c)
            else:
                out.append(_escape_char(c))
            i += 1
        return "".join(out)

    @staticmethod
    def _complete(text, j):
        while j < len(text) and (text[j].isdigit() or text[j] == ";"):
            j += 1
        return j < len(text)

    @staticmethod
    def _csi_end(text, i):
        """End index of an allowed CSI sequence at text[i], else 0."""
        if text[i + 1 : i + 2] != "[":
            return 0
        j = i + 2
        while j < len(text) and j - i < _MAX_PENDING and (text[j].isdigit() or text[j] == ";"):
            j += 1
        if j < len(text) and text[j] in _CSI_FINALS:
            return j + 1
        return 0
