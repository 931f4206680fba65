"""The firmware's MicroPython heap, measured on the real unix port: what the board import set costs,
and the smallest ``-X heapsize`` at which the import set and a full session with a reconnect
(tests/fw_mp_session.py) pass, with the code loaded three ways:

- ``py``:  the .py sources (compiled on the device at import: the compiler's RAM counts too);
- ``mpy``: mpy-cross .mpy files loaded into RAM (what ``evhub bundle --mpy`` puts on a filesystem);
- ``rom``: the same .mpy files in a romfs image mounted with ``vfs.VfsRom`` (on a board: the romfs
  partition, ``mpremote romfs deploy``); bytecode and constant strings run in place from the
  image, so only what the modules build at import time, their qstrs and the run itself take
  heap. The unix port has no flash: the image is read into a bytearray first thing, so it sits
  at the start of the heap in one block that never moves; its bytes (rounded up to the next KB,
  plus 1 KB) are added to ``-X heapsize`` and left out of every figure.

Run it from the repository root (needs the test extras; ``rom`` also needs mpremote)::

    .venv/bin/python tests/fw_mem.py            # the table (about a minute)
    .venv/bin/python tests/fw_mem.py --json
    .venv/bin/python tests/fw_mem.py --modes mpy,rom   # leave out compiling on the device (slow)
    .venv/bin/python tests/fw_mem.py --startup   # the real firmware's start-up over 100 path lengths (Layouts)

The unix port is 64-bit: every object pointer is 8 bytes where the ESP32's are 4, so the same
objects take roughly 1.5-2x the heap they take on a board. A figure that fits here fits there.
"""

import json
import os
import subprocess
import sys
import tempfile

TESTS = os.path.dirname(os.path.abspath(__file__))
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from fw_mp import REPO, compile_tree, micropython  # noqa: E402

from firmware.micropython import PILOT_MODULES, SCRIPTS, TLS_MODULES, board_modules  # noqa: E402
from tools.device.romfs import build_image  # noqa: E402

HEAP_MARK = "IMPORTS"


def core_modules():
    """Repo-relative paths of transport/*.py and firmware/*.py on the board (not its glue)."""
    return [src for src in board_modules() if src.startswith(("transport/", "firmware/")) and src.count("/") == 1]


def board_import_names(pilot=False):
    """Every board module in import order, then board.py (the glue; it touches no hardware at import).
    The pilot modules only for a board with a control pilot (`pilot`); never the TLS module (loaded
    only for a TLS hub, whose mbedTLS costs far more heap than the module)."""
    names = [src[:-3].replace("/", ".") for src in core_modules() if not src.endswith("__init__.py")]
    return [n for n in names if (pilot or n not in PILOT_MODULES) and n not in TLS_MODULES] + ["board"]


def import_script(names):
    """Imports `names` one by one; prints each module's heap (after gc.collect()), the qstr pool
    after it (``qstr pool: ... n_qstr=N ... n_total_bytes=B``) and the total."""
    lines = ["import gc, micropython", "gc.collect()", "_s = _l = gc.mem_alloc()"]
    for n in names:
        lines += [
            "import %s" % n,
            "gc.collect()",
            "_a = gc.mem_alloc()",
            "print('MOD', %r, _a - _l)" % n,
            "_l = _a",
            "micropython.qstr_info()",
        ]
    lines.append("print('%s', _l - _s)" % HEAP_MARK)
    lines.append("print('OK')")
    return "\n".join(lines) + "\n"


def rom_prelude(image_path):
    """Mounts the romfs image at /rom, read into one bytearray at the start of the heap."""
    return (
        "import os, vfs, sys\n"
        "_img = bytearray(os.stat(%r)[6])\n"
        "_f = open(%r, 'rb')\n_f.readinto(_img)\n_f.close()\n_f = None\n"
        "vfs.mount(vfs.VfsRom(_img), '/rom')\nsys.path.insert(0, '/rom')\n" % (image_path, image_path)
    )


def image_kb(image_path):
    """What the image takes of the unix port's heap, in whole KB (charged generously)."""
    return (os.stat(image_path).st_size + 1023) // 1024 + 1


class Setup:
    """The three code layouts in one temp directory."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.mpy_dir = os.path.join(tmp, "mpy")
        os.makedirs(self.mpy_dir)
        sources = [(src, src[:-3] + ".mpy") for src in core_modules()]
        sources += [("firmware/micropython/board.py", "board.mpy")]
        # the in-process fake hub of the session scenario, and the hub's end of a session it uses
        sources += [("tests/fw_hub.py", "fw_hub.mpy"), ("transport/serversession.py", "transport/serversession.mpy")]
        compile_tree(self.mpy_dir, sources)
        self.image = None
        try:
            from mpremote import romfs
        except ImportError:
            romfs = None
        if romfs is not None:
            self.image = os.path.join(tmp, "fw.romfs")
            with open(self.image, "wb") as f:
                f.write(build_image(self.mpy_dir))  # the one romfs builder, as `evhub bundle --romfs` uses

    def path(self, mode):
        if mode == "py":
            return [REPO, TESTS, os.path.join(REPO, "firmware", "micropython")]
        if mode == "mpy":
            return [self.mpy_dir]
        return []

    def prelude(self, mode):
        return rom_prelude(self.image) if mode == "rom" else ""

    def run(self, mode, body, heap_kb, journal=True):
        """Runs prelude + body with heap_kb of heap (rom: besides the image); returns (ok, stdout+stderr)."""
        if mode == "rom":
            heap_kb += image_kb(self.image)
        script = os.path.join(self.tmp, "script.py")
        text = self.prelude(mode)
        if journal:
            j = os.path.join(self.tmp, "journal.log")
            for p in (j, j + ".tmp"):
                if os.path.exists(p):
                    os.remove(p)
            text += "JOURNAL = %r\n" % j
        with open(script, "w") as f:
            f.write(text + body)
        env = dict(os.environ, MICROPYPATH=os.pathsep.join(self.path(mode)))
        proc = subprocess.run(
            [micropython(), "-X", "heapsize=%dK" % heap_kb, script],
            cwd=self.tmp,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        out = proc.stdout + proc.stderr
        return proc.returncode == 0 and "\nOK" in "\n" + proc.stdout, out


def session_body():
    with open(os.path.join(TESTS, "fw_mp_session.py")) as f:
        return f.read()


def min_heap_kb(ok_at, lo=8, hi=512):
    """Smallest heap size in KB (1 KB steps) for which ok_at(kb) is true; ok_at(hi) must be true.
    The allocator is deterministic for one binary and one script, so a bisection is exact."""
    if not ok_at(hi):
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok_at(mid):
            hi = mid
        else:
            lo = mid
    return hi


def parse_import(out):
    """(total bytes, {module: [bytes, qstrs added, qstr pool bytes added]})."""
    mods = {}
    total = None
    last = None
    q = (0, 0)
    for line in out.splitlines():
        w = line.split()
        if len(w) == 3 and w[0] == "MOD":
            last = w[1].strip("'")
            mods[last] = [int(w[2]), 0, 0]
        elif line.startswith("qstr pool:"):
            kv = dict(x.split("=") for x in w[2:])
            now = (int(kv["n_qstr"].rstrip(",")), int(kv["n_total_bytes"].rstrip(",")))
            if last is not None:
                mods[last][1:] = [now[0] - q[0], now[1] - q[1]]
            q = now
        elif len(w) == 2 and w[0] == HEAP_MARK:
            total = int(w[1])
    return total, mods


def parse_session(out):
    for line in out.splitlines():
        if line.startswith("HEAP "):
            return dict((k, int(v)) for k, v in (kv.split("=") for kv in line.split()[1:]))
    return None


def measure(modes=("py", "mpy", "rom"), minimum=True):
    """{mode: {...}} with import_bytes, per-module bytes, session base/peak/runtime and minimal heaps."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="evhub-mem-") as tmp:
        setup = Setup(tmp)
        imports = import_script(board_import_names())
        session = session_body()
        for mode in modes:
            if mode == "rom" and setup.image is None:
                continue
            ok, text = setup.run(mode, imports, 1024, journal=False)
            if not ok:
                raise RuntimeError("%s import set failed:\n%s" % (mode, text[-3000:]))
            total, mods = parse_import(text)
            ok, text = setup.run(mode, session, 1024)
            if not ok:
                raise RuntimeError("%s session failed:\n%s" % (mode, text[-3000:]))
            heap = parse_session(text)
            row = {"import_bytes": total, "modules": mods, "session": heap}
            if minimum:
                row["min_heap_kb_imports"] = min_heap_kb(lambda kb: setup.run(mode, imports, kb, journal=False)[0])
                row["min_heap_kb_session"] = min_heap_kb(lambda kb: setup.run(mode, session, kb)[0])
            out[mode] = row
    return out


def table(result):
    rows = [
        ("board import set, heap after import", lambda r: "%.1f KB" % (r["import_bytes"] / 1024.0)),
        (
            "session: imports (codec, kinds, chargepoint, journal, fake hub)",
            lambda r: "%.1f KB" % ((r["session"]["base"] - r["session"]["start"]) / 1024.0),
        ),
        ("session: run-time peak on top", lambda r: "%.1f KB" % (r["session"]["runtime"] / 1024.0)),
        ("session: live peak", lambda r: "%.1f KB" % ((r["session"]["peak"] - r["session"]["start"]) / 1024.0)),
        ("smallest -X heapsize, board import set", lambda r: "%s KB" % r.get("min_heap_kb_imports", "-")),
        ("smallest -X heapsize, full session + reconnect", lambda r: "%s KB" % r.get("min_heap_kb_session", "-")),
    ]
    modes = list(result)
    lines = ["| | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for name, fn in rows:
        lines.append("| %s | %s |" % (name, " | ".join(fn(result[m]) for m in modes)))
    lines.append("")
    lines.append("per module: heap after import in bytes (new qstrs, bytes of qstr pool and text)")
    names = list(result[modes[0]]["modules"])
    for n in names:
        lines.append(
            "  %-24s %s" % (n, "  ".join("%s=%d (%d, %d)" % tuple([m] + result[m]["modules"][n]) for m in modes))
        )
    return "\n".join(lines)


def glue_modules():
    """(source, .mpy) of the board glue compiled beside the packages on the unix port: board.py, ptylink.py."""
    glue = [src for src in board_modules(unix=True) if "/micropython/" in src]
    return [(src, os.path.basename(src)[:-3] + ".mpy") for src in glue if os.path.basename(src) not in SCRIPTS]


class Layouts:
    """The real firmware's start-up (main.py, then the code from a romfs image, as the unix-port tests
    run it against a hub) with every file under a directory whose path is `length` characters long.

    The tests' temporary paths land in the heap before the firmware's own big tables do: main.py's
    path (interned for tracebacks), the image's in the launcher, the journal's in config.json (and
    its ".tmp" and a stat result when the journal loads). Which holes are left for the tables that
    grow last (an instance's attributes, a module's globals) depends on them, so a firmware at the
    edge starts at some lengths and not at others. The link is a pty path that does not exist: the
    start-up and the first loop turn need no hub."""

    def __init__(self, tmp):
        self.tmp = tmp
        bundle = os.path.join(tmp, "bundle")
        compile_tree(bundle, [(src, src[:-3] + ".mpy") for src in core_modules()] + glue_modules())
        self.image = build_image(bundle)
        with open(os.path.join(REPO, "firmware", "micropython", "main.py")) as f:
            self.main = f.read()

    def start(self, length, heap_kb, link=None, live=False):
        """(started, output) of the firmware in heap_kb besides its image; with `live`, (live bytes after
        start-up and one loop turn, output) instead. `link`: the config's link (default a pty path)."""
        base = os.path.join(self.tmp, "y" * max(1, length - len(self.tmp) - 1))
        fs = os.path.join(base, "fs")
        os.makedirs(fs, exist_ok=True)
        image = os.path.join(base, "fw.romfs")
        with open(image, "wb") as f:
            f.write(self.image)
        with open(os.path.join(fs, "main.py"), "w") as f:
            f.write(self.main)
        with open(os.path.join(fs, "launch.py"), "w") as f:
            f.write(rom_prelude(image) + "import main\n")
        cfg = {"id": "CP-SER", "key": "0" * 32, "connectors": 1, "max_kw": 22.0, "journal": base + "/CP-SER.journal"}
        cfg.update(link or {"serial": "/dev/pts/99999"})
        cfg_path = os.path.join(base, "CP-SER.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        for p in (cfg["journal"], cfg["journal"] + ".tmp"):
            if os.path.exists(p):
                os.remove(p)
        proc = subprocess.Popen(
            [micropython(), "-X", "heapsize=%dK" % (heap_kb + image_kb(image)), "launch.py", cfg_path],
            cwd=fs,
            env=dict(os.environ, MICROPYPATH=""),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines = []
        try:
            for line in proc.stdout:  # the firmware runs until killed: read up to what decides
                lines.append(line)
                if "Traceback" in line or "rror" in line or ("heap:" in line if live else ": started:" in line):
                    break
        finally:
            proc.kill()
            lines.append(proc.communicate()[0] or "")
        out = "".join(lines)
        if live:
            used = [int(w) for w in out.split("heap: ", 1)[-1].split()[:1] if w.isdigit()]
            return (used[0] - (len(self.image) + 15) // 16 * 16 if used else None), out
        return ": started:" in out and "rror" not in out, out


def startup(lengths=range(25, 125), heaps=(64, 62, 60)):
    """{heap KB: number of `lengths` at which the firmware starts}, and its live heap over TCP and a pty."""
    with tempfile.TemporaryDirectory(prefix="evhub-start-") as tmp:
        layouts = Layouts(tmp)
        out = {kb: sum(1 for n in lengths if layouts.start(n, kb)[0]) for kb in heaps}
        out["layouts"] = len(lengths)
        out["live_tcp"] = layouts.start(40, 256, {"hub": {"host": "127.0.0.1", "port": 9}}, live=True)[0]
        out["live_pty"] = layouts.start(40, 256, live=True)[0]
    return out


def main(argv):
    if "--startup" in argv:
        print(json.dumps(startup(), indent=1))
        return
    modes = ("py", "mpy", "rom")
    if "--modes" in argv:
        modes = tuple(argv[argv.index("--modes") + 1].split(","))
    result = measure(modes, minimum="--no-min" not in argv)
    if "--json" in argv:
        print(json.dumps(result, indent=1))
    else:
        print(table(result))


if __name__ == "__main__":
    main(sys.argv[1:])
