"""Files that hold secrets (the store, the operator key, credentials, a bundle's config.json).

One place decides how they are written and checked, so every tool gets it right:

- ``write_secret`` writes a file atomically (``PATH.tmp`` then rename) and owner-only
  (0600) even when an old file or an old ``.tmp`` was 0644: the temporary file is always
  created fresh with O_EXCL, so it never inherits a mode. A symlink at PATH (or at
  PATH.tmp) is refused: following it would write the secret wherever it points.
- ``prepare_store`` runs before SQLite opens the store. It creates a missing store 0600
  (SQLite gives the -wal and -shm side files the mode of the database file), takes group
  access away from an existing one (with a warning), tightens side files that exist, and
  REFUSES a store other local users can read or write. Group bits are fixed rather than
  refused because the group is often the owner's own (user private groups) and chmod loses
  nothing; a world-readable store is refused because every local user may already have
  copied its keys, which a silent chmod would hide: the operator must fix it and should
  reissue the keys.

Plain os calls, no umask: umask is per process and the hub opens stores from several
threads, so changing it around one open could widen or narrow another thread's file.
"""

import logging
import os
import stat

log = logging.getLogger(__name__)

SIDE_SUFFIXES = ("-wal", "-shm", "-journal")
PRIVATE = 0o600


class SecretFileError(ValueError):
    """A secret file refused (symlink, readable by others, not writable); a ValueError so
    command-line tools report it as one line like any other bad input."""


def _refuse_symlink(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise SecretFileError("%s is a symlink; refusing to write a secret through it (remove it first)" % path)


def write_secret(path, text):
    """Write ``text`` (str or bytes) to ``path`` atomically with mode 0600."""
    path = str(path)
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    _refuse_symlink(path)
    tmp = path + ".tmp"
    _refuse_symlink(tmp)
    try:
        os.unlink(tmp)  # a stale .tmp (perhaps 0644) is never reused: O_EXCL below creates a new one
    except FileNotFoundError:
        pass
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, PRIVATE)
    try:
        os.fchmod(fd, PRIVATE)  # the umask may have taken bits away; never adds any, but be exact
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)  # rename replaces a symlink created since the check; it never follows one


def _mode_text(mode):
    return "%04o" % stat.S_IMODE(mode)


def prepare_store(path, create=True):
    """Make ``path`` (an SQLite store) owner-only before it is opened; see the module doc.
    create=False (read-only readers): a missing store is left to the caller to report."""
    path = str(path)
    if path == ":memory:" or path.startswith("file:"):
        return
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if not create:
            return
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), PRIVATE)
        except FileExistsError:  # created by another process meanwhile: check it like any other
            st = os.stat(path)
        else:
            os.fchmod(fd, PRIVATE)
            os.close(fd)  # SQLite takes an empty file as a new database
            st = os.stat(path)
    if st.st_mode & 0o007:
        raise SecretFileError(
            "%s holds device keys and is readable by other local users (mode %s); "
            "run: chmod 600 %s (and consider reissuing the keys)" % (path, _mode_text(st.st_mode), path)
        )
    for name in [path] + [path + s for s in SIDE_SUFFIXES] + [path + OPERATOR_KEY_SUFFIX]:
        try:
            mode = os.stat(name).st_mode
        except FileNotFoundError:
            continue
        if mode & 0o077:
            if name == path:
                log.warning("%s was group-accessible (mode %s): now 0600", name, _mode_text(mode))
            os.chmod(name, PRIVATE)


OPERATOR_KEY_SUFFIX = ".operator-key"


def operator_key_path(db_path):
    """Where the operator key of the hub serving ``db_path`` lives: next to the store."""
    from hub.store.backend import sqlite_path

    return sqlite_path(str(db_path)) + OPERATOR_KEY_SUFFIX
