"""transport/PROTOCOL.md cannot drift from the kind table or the error codes."""

import os
import re

from transport import kinds as K
from transport.errors import ERROR_NAMES

DOC = os.path.join(os.path.dirname(__file__), "..", "transport", "PROTOCOL.md")


def doc_text():
    with open(DOC) as f:
        return f.read()


def documented_kinds():
    rows = {}
    section = doc_text().split("## Kinds", 1)[1].split("\n## ", 1)[0]
    for m in re.finditer(r"^\| (\d+) \| `(\w+)` \| (.*) \|$", section, re.M):
        fields = re.findall(r"`(\w+): (\w+)(\??)`", m.group(3))
        rows[int(m.group(1))] = (m.group(2), [(f, t, bool(opt)) for f, t, opt in fields])
    return rows


def test_every_kind_is_documented_with_its_fields_and_types():
    doc = documented_kinds()
    for kind, (name, _direction, spec) in K.KINDS.items():
        assert kind in doc, "kind %d (%s) missing from PROTOCOL.md" % (kind, name)
        doc_name, doc_fields = doc[kind]
        assert doc_name == name
        expected = [(f, K.TYPE_NAMES[t & 0x0F], bool(t & K.OPT)) for f, t in spec]
        assert doc_fields == expected, "fields of %s differ from kinds.py" % name


def test_the_doc_lists_no_kind_the_table_lacks():
    assert set(documented_kinds()) == set(K.KINDS)


def test_every_error_code_is_documented():
    text = doc_text()
    for code, name in ERROR_NAMES.items():
        assert re.search(r"^\| %d \| `%s` \|" % (code, name), text, re.M), "error %d %s undocumented" % (code, name)


def test_the_doc_names_the_protocol_version_and_frame_limits():
    from transport.framing import MAX_FRAME_SIZE, SERIAL_MAX_FRAME

    text = doc_text()
    assert "version %d" % K.PROTOCOL_VERSION in text
    assert "1 MiB" in text and MAX_FRAME_SIZE == 1 << 20
    assert str(SERIAL_MAX_FRAME) in text
