"""A private PostgreSQL cluster for the tests: Debian's server binaries, initdb + pg_ctl, a Unix
socket in a temp dir, no TCP listener, stopped and deleted at the end.

Why our own ~60 lines and not pytest-postgresql or pgserver (see ../shared/designs/scaleout-postgresql.md
§3): initdb refuses to run as root and CI runs as root, so the server runs as the ``postgres`` user
through ``runuser``; pytest-postgresql fails there, and pgserver's wheel has no btree_gist, which the
reservation exclusion constraint needs. `make test` installs Debian's ``postgresql`` when it is missing
(``make pg-deps``); where it cannot, the tests that need the cluster fail with the reason.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile

SUPERUSER = "evhub"
PORT = 5432  # a socket file in a private directory: no port clash with anything on the machine


def server_bin() -> str | None:
    """The newest installed PostgreSQL server's bin directory (Debian layout), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]), reverse=True)
    return os.path.dirname(found[0]) if found else None


_databases = itertools.count()


class PgCluster:
    """``with PgCluster() as pg: psycopg.connect(pg.dsn())``; ``pg.dsn("other_db")`` for another database."""

    def __init__(self) -> None:
        self.bin = server_bin()
        if self.bin is None:
            raise RuntimeError(
                "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
                "(make pg-deps installs Debian's postgresql as root)"
            )
        # Not under pytest's tmp dirs: those are root-only, and the server runs as postgres.
        self.base = tempfile.mkdtemp(prefix="evhub-pg-")
        self.data = os.path.join(self.base, "data")
        self.log = os.path.join(self.base, "server.log")
        self._as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as_pg:
            shutil.chown(self.base, "postgres")

    def _run(self, *argv: str) -> None:
        res = subprocess.run(
            self._as_pg + list(argv), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
        )
        if res.returncode != 0:
            raise RuntimeError(
                "%s failed (%d): %s%s" % (os.path.basename(argv[0]), res.returncode, res.stdout, res.stderr)
            )

    def start(self) -> PgCluster:
        self._run(
            os.path.join(self.bin, "initdb"), "-D", self.data, "-A", "trust", "-U", SUPERUSER, "-E", "UTF8", "--no-sync"
        )
        # fsync off: a test cluster's durability is not under test, its speed is the suite's.
        opts = "-c listen_addresses='' -c unix_socket_directories=%s -p %d -c fsync=off" % (self.base, PORT)
        self._run(os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-o", opts, "-l", self.log, "-w", "start")
        return self

    def dsn(self, dbname: str = "postgres") -> str:
        return "host=%s port=%d user=%s dbname=%s" % (self.base, PORT, SUPERUSER, dbname)

    def url(self, dbname: str = "postgres") -> str:
        """The same as a postgresql:// URL, the form `evhub --db` takes (the socket directory as host)."""
        return "postgresql://%s@/%s?host=%s&port=%d" % (SUPERUSER, dbname, self.base, PORT)

    def new_database(self, prefix: str = "evhub") -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        name = "%s_%d_%d" % (prefix, os.getpid(), next(_databases))
        with psycopg.connect(self.dsn(), autocommit=True) as admin:
            admin.execute('CREATE DATABASE "%s"' % name)
        return self.url(name)

    def stop(self) -> None:
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            subprocess.run(
                self._as_pg + [os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
            )
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
