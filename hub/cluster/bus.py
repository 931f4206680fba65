"""The LISTEN thread: PostgreSQL notifications to handlers.

One dedicated autocommit connection (a pooled or transactional one would not receive them). After
every (re)connect the LISTENs are committed first and only then `resync` runs, as PostgreSQL's LISTEN
documentation prescribes for the startup race: whatever changed while no one listened is re-read
from the tables. Handlers run on this thread: they must only hand work on (an actor `tell`).
"""

import logging
import threading
from typing import Callable, Mapping

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

RECONNECT_S = 1.0


class Listener:
    def __init__(
        self,
        dsn: str,
        handlers: "Mapping[str, Callable[[str], None]]",
        resync: Callable[[], None] = lambda: None,
        name: str = "cluster-listen",
    ) -> None:
        self.dsn = dsn
        self.handlers = dict(handlers)
        self.resync = resync
        self._stop = threading.Event()
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> "Listener":
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    for channel in self.handlers:
                        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self.connected.set()
                    self.resync()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._dispatch(note.channel, note.payload)
            except psycopg.Error as exc:
                self.connected.clear()
                if not self._stop.is_set():
                    log.warning("cluster: listener lost the database (%s); reconnecting", exc)
                    self._stop.wait(RECONNECT_S)

    def _dispatch(self, channel: str, payload: str) -> None:
        handler = self.handlers.get(channel)
        if handler is None:
            return
        try:
            handler(payload)
        except Exception:  # one bad handler must not stop the cluster's notifications
            log.exception("cluster: handler for %s failed on %r", channel, payload)
