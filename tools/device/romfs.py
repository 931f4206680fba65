"""The lean bundle: the compiled modules in a romfs image, only the scripts and the config on the filesystem.

``evhub bundle --romfs`` and ``evhub flash --romfs`` write::

    boot.py  main.py  config.json  [hub-ca.der]   on the board's filesystem (the config and the
                                                  CA change per station; the scripts run as source)
    romfs.img                                     board.mpy, transport/, firmware/ as .mpy, for
                                                  ``mpremote romfs deploy`` into the ROMFS partition

Why: a module imported from romfs runs its bytecode and constant strings in place from flash,
so only what it builds at import takes heap. On the unix port the board import set takes
~53 KB of heap from romfs against ~96 KB as .mpy loaded into RAM (firmware/README.md), and a
32-bit build ~36 KB against 74 KB (issue 12): romfs is what lets the firmware fit an ESP32's
heap.

A board whose MicroPython has a ROMFS partition (1.25+, built with ``MICROPY_VFS_ROM``) mounts
it at ``/rom`` at power-up and puts ``/rom`` on ``sys.path``, so ``import board`` finds it. The
unix port has no partition: the tests (tests/fw_mem.py ``rom_prelude``) and a person mount
``romfs.img`` with ``vfs.VfsRom`` first and then import main (``evhub bundle --help``). main.py
does not do it itself: on a board it is source compiled into the heap, and the 64 KB romfs
runs have a few hundred bytes to spare (a 300-byte mount helper there ran them out of memory).

The image is built by mpremote's own builder (``mpremote.romfs.make_romfs``, what ``mpremote
romfs build`` runs), from .mpy files our mpy-cross already compiled. This module is the one
place that calls it: the heap measurements (tests/fw_mem.py) build their images here too.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Sequence

from tools.device import bundle as B

IMAGE_NAME = "romfs.img"  # mpremote romfs deploy takes a file ending .img or .romfs as a built image
ON_FS = ("boot.py", "main.py", B.CONFIG_NAME)  # what stays on the filesystem; everything else goes in the image


def build_image(src_dir: str) -> bytes:
    """The romfs image of `src_dir` (its files as they are: no compiling), via mpremote's builder."""
    try:
        from mpremote import romfs
    except ImportError:
        raise B.BundleError("--romfs needs mpremote (its romfs builder): pip install -e '.[board]'") from None
    # make_romfs prints the tree it packs; the caller prints its own listing.
    with contextlib.redirect_stdout(io.StringIO()):
        return romfs.make_romfs(src_dir.rstrip("/") + "/", mpy_cross=False)


def image_files(written: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The entries of a .mpy bundle listing that go into the image."""
    return [(path, size) for path, size in written if path not in ON_FS]


def write_romfs_bundle(
    out_dir: str,
    config: dict,
    march: str = B.DEFAULT_MARCH,
    force: bool = False,
    extra_files: Sequence[tuple[str, bytes]] = (),
) -> list[tuple[str, int]]:
    """Write the romfs bundle into `out_dir`; returns [(board path, size)]: the filesystem files, then
    ``romfs.img``. `extra_files` (name, bytes) go on the filesystem too (the hub's CA)."""
    files = B.board_files()
    B.check_out_dir(out_dir, files, force, extra=(IMAGE_NAME,) + tuple(n for n, _d in extra_files))
    with tempfile.TemporaryDirectory(prefix="evhub-romfs-") as tmp:
        staged = os.path.join(tmp, "bundle")
        written = B.write_bundle(staged, config, mpy=True, march=march)
        rom_dir = os.path.join(tmp, "rom")
        for path, _size in image_files(written):
            target = os.path.join(rom_dir, *path.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(os.path.join(staged, *path.split("/")), target)
        image = build_image(rom_dir)
        try:
            os.makedirs(out_dir, exist_ok=True)
            B.remove_bundle_modules(out_dir, files)  # a stale board.mpy or transport/ would shadow the image
            out = []
            for path, size in written:
                if path in ON_FS:
                    # config.json holds the key: created owner-only, as write_bundle does
                    mode = 0o600 if path == B.CONFIG_NAME else 0o644
                    fd = os.open(os.path.join(out_dir, path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
                    with os.fdopen(fd, "wb") as f, open(os.path.join(staged, path), "rb") as src:
                        f.write(src.read())
                    out.append((path, size))
            for name, data in extra_files:
                with open(os.path.join(out_dir, name), "wb") as f:
                    f.write(data)
                out.append((name, len(data)))
            with open(os.path.join(out_dir, IMAGE_NAME), "wb") as f:
                f.write(image)
            out.append((IMAGE_NAME, len(image)))
        except OSError as exc:
            raise B.BundleError("cannot write the bundle in %s: %s" % (out_dir, exc.strerror or exc)) from None
    return out


def planned_paths(extra_names: tuple[str, ...] = ()) -> list[tuple[str, int]]:
    """[(board path, 0)] of what write_romfs_bundle would write (dry runs)."""
    return [(name, 0) for name in ON_FS + tuple(extra_names) + (IMAGE_NAME,)]
