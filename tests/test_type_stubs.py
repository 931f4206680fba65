"""The type stubs beside board code (transport/*.pyi): they say what the module really has, and no
bundle for a board carries one (a stub is for mypy on the hub's side only)."""

import ast
import glob
import importlib
import inspect
import os

from hubproc import REPO, evhub

KEY = "00112233445566778899aabbccddeeff"


def stubs():
    found = sorted(glob.glob(os.path.join(REPO, "transport", "*.pyi")))
    assert found, "no transport/*.pyi stubs: mypy would see the board modules untyped"
    return found


def declared(stub_path):
    """(name, ast node) of every top-level declaration in a stub, but the module __getattr__."""
    with open(stub_path) as f:
        tree = ast.parse(f.read(), stub_path)
    out = []
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out.append((node.target.id, node))
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name != "__getattr__":
            out.append((node.name, node))
    return out


def stub_params(fn):
    """Parameter names of a stub function, without self."""
    names = [a.arg for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs]
    return [n for n in names if n != "self"]


def test_every_name_a_transport_stub_declares_exists_in_the_module_with_the_same_parameters():
    for path in stubs():
        name = "transport." + os.path.basename(path)[: -len(".pyi")]
        assert os.path.exists(path[:-1]), "%s has no module beside it" % path
        module = importlib.import_module(name)
        for attr, node in declared(path):
            assert hasattr(module, attr), "%s declares %s, which %s does not have" % (path, attr, name)
            value = getattr(module, attr)
            if isinstance(node, ast.AnnAssign) and ast.unparse(node.annotation) == "int":
                assert type(value) is int, "%s.%s is declared int, is %r" % (name, attr, value)
            if isinstance(node, ast.FunctionDef):
                real = [p for p in inspect.signature(value).parameters if p != "self"]
                assert real == stub_params(node), "%s.%s takes %s, its stub says %s" % (
                    name,
                    attr,
                    real,
                    stub_params(node),
                )
            if isinstance(node, ast.ClassDef):
                assert inspect.isclass(value), "%s.%s is declared a class" % (name, attr)
                for base in node.bases:
                    assert issubclass(value, eval(ast.unparse(base), vars(module))), (name, attr, ast.unparse(base))
                for item in node.body:
                    if isinstance(item, ast.FunctionDef):
                        real = [p for p in inspect.signature(getattr(value, item.name)).parameters if p != "self"]
                        assert real == stub_params(item), "%s.%s.%s takes %s, its stub says %s" % (
                            name,
                            attr,
                            item.name,
                            real,
                            stub_params(item),
                        )


def test_a_board_bundle_holds_no_type_stubs(tmp_path):
    assert stubs()  # there are stubs that could leak
    out = str(tmp_path / "board")
    evhub("bundle", out, "--id", "CP-S", "--key", KEY, "--hub", "tcp://192.168.1.10:7878", "--wifi", "depot:secret123")
    written = [os.path.relpath(os.path.join(top, n), out) for top, _dirs, files in os.walk(out) for n in files]
    assert any(w.replace(os.sep, "/") == "transport/errors.py" for w in written), written  # the stubbed module went
    assert [w for w in written if w.endswith(".pyi")] == []
