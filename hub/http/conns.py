"""Who holds the HTTP server's connections: caps per client address, and the idle ones first out.

One client (one address) may hold at most MAX_PER_ADDRESS connections and MAX_SSE_PER_ADDRESS
event streams, so it cannot take the whole server. A keep-alive connection waiting for its next
request is idle: when the server is full, the one idle longest is closed to make room, and an
idle connection is closed after IDLE_KEEPALIVE_S anyway.
"""

MAX_PER_ADDRESS = 32
MAX_SSE_PER_ADDRESS = 8
IDLE_KEEPALIVE_S = 5.0


class PerAddress:
    """A count per address, forgotten at zero (the table never grows with past clients)."""

    def __init__(self, cap):
        self.cap = cap
        self.counts = {}

    def full(self, address):
        return self.counts.get(address, 0) >= self.cap

    def take(self, address):
        """Count one more for `address`; False (and nothing counted) if it already holds `cap`."""
        n = self.counts.get(address, 0)
        if n >= self.cap:
            return False
        self.counts[address] = n + 1
        return True

    def give(self, address):
        n = self.counts.get(address, 0) - 1
        if n > 0:
            self.counts[address] = n
        else:
            self.counts.pop(address, None)


class IdleConnections:
    """Keep-alive connections between requests, longest idle first."""

    def __init__(self):
        self.writers = {}  # writer -> None, in the order they went idle

    def idle(self, writer):
        self.writers.pop(writer, None)
        self.writers[writer] = None

    def busy(self, writer):
        self.writers.pop(writer, None)

    def evict_oldest(self):
        """Close the connection idle longest and return its writer; None if none is idle."""
        for writer in self.writers:
            del self.writers[writer]
            writer.transport.abort()
            return writer
        return None
