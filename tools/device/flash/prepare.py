"""What runs on the board before the bundle is copied (`mpremote run evhub_prepare.py`): the old
modules go, and the board reports its platform, free bytes and whether it is in maintenance."""

from tools.device import bundle as B

NOAUTO = "noauto"  # on the board's root: main.py does not start the firmware (firmware/micropython/main.py)
PREPARE_NAME = "evhub_prepare.py"  # written beside the bundle directory, never into it


def stale_names(written):
    """What to remove on the board before copying: the packages and both forms of every top-level module."""
    names = []
    for path, _size in written:
        top = path.split("/")[0]
        if top in names or top in ("boot.py", "main.py", B.CONFIG_NAME):
            continue
        if "/" in path:
            names.append(top)
        elif top.endswith(".py") or top.endswith(".mpy"):
            base = top.rsplit(".", 1)[0]
            for variant in (base + ".py", base + ".mpy"):
                if variant not in names:
                    names.append(variant)
    return names


def prepare_script(stale):
    """Runs on the board (mpremote run): remove the old modules (`stale` names), report platform and free bytes."""
    return (
        "import os, sys\n"
        "def _rm(p):\n"
        "    try:\n"
        "        st = os.stat(p)\n"
        "    except OSError:\n"
        "        return\n"
        "    if st[0] & 0x4000:\n"
        "        for n in os.listdir(p):\n"
        "            _rm(p + '/' + n)\n"
        "        os.rmdir(p)\n"
        "    else:\n"
        "        os.remove(p)\n"
        "for _p in %r:\n"
        "    _rm(_p)\n"
        "try:\n"
        "    os.stat(%r)\n"
        "    _n = 1\n"
        "except OSError:\n"
        "    _n = 0\n"
        "_s = os.statvfs('/')\n"
        "print('EVHUB-BOARD', sys.platform, _s[0] * _s[3], 'noauto=%%d' %% _n)\n" % (tuple(stale), NOAUTO)
    )
