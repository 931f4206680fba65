"""The one hop from other threads into the event loop (gateway outbox, event bus, simulator)."""

import asyncio
import threading

from hub.io.loophop import LoopHop


def test_items_posted_from_other_threads_arrive_in_order_in_few_bursts_and_a_stuck_loop_sheds():
    loop = asyncio.new_event_loop()
    bursts = []
    hop = LoopHop(loop, lambda items: bursts.append(list(items)))
    try:
        threads = [threading.Thread(target=lambda i=i: [hop.post((i, n)) for n in range(100)]) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        loop.run_until_complete(asyncio.sleep(0.01))
        got = [item for burst in bursts for item in burst]
        assert sorted(got) == [(i, n) for i in range(4) for n in range(100)]
        for i in range(4):  # each thread's items in the order it posted them
            assert [n for j, n in got if j == i] == list(range(100))
        assert len(bursts) < 400, "one call_soon_threadsafe per burst, not per item"
        small = LoopHop(loop, bursts.append, limit=3)
        assert [small.post(x) for x in range(5)] == [True, True, True, False, False] and small.shed == 2
    finally:
        loop.close()
