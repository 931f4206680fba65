"""The router's group commit: one reservation batch at the book at a time, released by the batch's
own `done` reply (no barrier message), and each vehicle's RESERVE sent to the book once."""

from types import SimpleNamespace

from hub import config as hubconfig
from hub.messages import ReserveBatch, ReserveRequest, StationOnline
from hub.router import Router
from transport import kinds as K

NOW = 1_800_000_000.0


class Loop:
    """call_soon / call_soon_threadsafe collected, run when the test says (the I/O loop's turn)."""

    def __init__(self):
        self.ready = []

    def call_soon(self, fn, *args):
        self.ready.append((fn, args))

    call_soon_threadsafe = call_soon

    def run(self):
        while self.ready:
            fn, args = self.ready.pop(0)
            fn(*args)


class Inbox:
    def __init__(self):
        self.told = []

    def tell(self, msg):
        self.told.append(msg)


def vehicle_link(link_id, vehicle_id):
    return SimpleNamespace(id=link_id, session=SimpleNamespace(role="vehicle", peer_id=vehicle_id))


def make_router():
    book, registry, loop = Inbox(), Inbox(), Loop()
    router = Router(registry, book, Inbox(), None, lambda: NOW, hubconfig.load(None, {}))
    router.attach(SimpleNamespace(loop=loop, links={}))
    return router, book, loop


def reserve(router, link_id, vehicle_id, seq, start):
    fields = ["CP-1", start, start + 3600]
    fields += [None] * (len(K.spec(K.RESERVE)[3]) - len(fields))  # optional trailing fields (a request id) left nil
    router.dispatch(vehicle_link(link_id, vehicle_id), K.RESERVE, seq, fields)


def test_reserves_of_one_wakeup_go_to_the_book_as_one_batch_of_typed_requests():
    router, book, loop = make_router()
    reserve(router, 1, "EV-1", 7, 1_800_003_600)
    reserve(router, 2, "EV-2", 8, 1_800_007_200)
    loop.run()
    assert len(book.told) == 1 and type(book.told[0]) is ReserveBatch
    batch = book.told[0]
    assert batch.requests == [
        ReserveRequest(1, 7, "EV-1", "CP-1", 1_800_003_600, 1_800_007_200),
        ReserveRequest(2, 8, "EV-2", "CP-1", 1_800_007_200, 1_800_010_800),
    ]
    assert batch.now == NOW and callable(batch.done)


def test_the_next_batch_waits_for_the_books_done_and_then_carries_everything_that_waited():
    router, book, loop = make_router()
    reserve(router, 1, "EV-1", 1, 1_800_003_600)
    loop.run()
    reserve(router, 2, "EV-2", 2, 1_800_007_200)
    reserve(router, 3, "EV-3", 3, 1_800_010_800)
    loop.run()
    assert len(book.told) == 1  # the book is still committing the first
    book.told[0].done()  # the book's thread says the first batch is answered
    loop.run()
    assert len(book.told) == 2
    assert [r.seq for r in book.told[1].requests] == [2, 3]
    book.told[1].done()
    loop.run()
    assert len(book.told) == 2  # nothing waited: no empty batch


def test_a_station_coming_online_is_told_to_the_registry_as_a_typed_message():
    router, _, _ = make_router()
    router.gateway.bind_peer = lambda link: True
    link = SimpleNamespace(
        id=5, opened_at=0.0, label="station CP-1", session=SimpleNamespace(role="station", peer_id="CP-1")
    )
    router.peer_up(link)
    assert router.registry.told == [StationOnline("CP-1")]
