"""transport/PROTOCOL.md cannot drift from the kind table or the error codes."""

import os
import re

from transport import kinds as K
from transport import errors
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


def documented_directions():
    """kind -> the direction of the section it is listed under ("any" for the session kinds)."""
    out = {}
    heads = {"Session (any role)": "any"}
    for part in doc_text().split("## Kinds", 1)[1].split("\n## ", 1)[0].split("\n### ")[1:]:
        head, body = part.split("\n", 1)
        direction = heads.get(head) or "%s>%s" % tuple(w.strip().lower() for w in head.split("→"))
        for m in re.finditer(r"^\| (\d+) \|", body, re.M):
            out[int(m.group(1))] = direction
    return out


def test_every_kind_is_documented_with_its_fields_and_types():
    doc = documented_kinds()
    for kind, (name, _direction, spec) in K.KINDS.items():
        assert kind in doc, "kind %d (%s) missing from PROTOCOL.md" % (kind, name)
        doc_name, doc_fields = doc[kind]
        assert doc_name == name
        expected = [(f, t.rstrip("?"), t.endswith("?")) for f, t in spec]
        assert doc_fields == expected, "fields of %s differ from kinds.py" % name


def test_every_kind_is_documented_under_its_direction():
    where = documented_directions()
    for kind, (name, direction, _spec) in K.KINDS.items():
        assert where.get(kind) == direction, "%s is listed under %s, kinds.py says %s" % (
            name,
            where.get(kind),
            direction,
        )


def test_every_kind_is_a_module_constant_named_after_it():
    for kind, (name, _direction, _spec) in K.KINDS.items():
        assert getattr(K, name.upper()) == kind
    numbers = K.kinds()
    assert len(numbers) == len(set(numbers)), "a kind number appears twice in the table (KINDS would keep one)"
    names = [K.KINDS[k][0] for k in K.KINDS]
    assert len(names) == len(set(names)), "two kinds share a name"


def test_the_doc_lists_no_kind_the_table_lacks():
    assert set(documented_kinds()) == set(K.KINDS)


def test_every_error_code_is_documented():
    text = doc_text()
    assert sorted(ERROR_NAMES) == list(range(1, len(ERROR_NAMES) + 1))
    for code, name in ERROR_NAMES.items():
        assert getattr(errors, "E_" + name.upper()) == code, "E_%s is not %d" % (name.upper(), code)
        assert re.search(r"^\| %d \| `%s` \|" % (code, name), text, re.M), "error %d %s undocumented" % (code, name)


def test_the_doc_names_the_protocol_version_and_frame_limits():
    from transport.framing import MAX_FRAME_SIZE, SERIAL_MAX_FRAME

    text = doc_text()
    assert "version %d" % K.PROTOCOL_VERSION in text
    assert "1 MiB" in text and MAX_FRAME_SIZE == 1 << 20
    assert str(SERIAL_MAX_FRAME) in text
