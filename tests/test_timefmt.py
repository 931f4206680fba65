"""Log lines show windows in local ISO time with the epoch seconds beside them."""

import datetime
import logging

from hub.timefmt import Window, window_text


def test_a_window_reads_as_local_time_with_its_epoch_seconds():
    start = int(datetime.datetime(2026, 12, 5, 18, 30).astimezone().timestamp())
    text = window_text(start, start + 2400)
    assert text.startswith("2026-12-05 18:30-19:10 ")
    assert text.endswith("[%d, %d)" % (start, start + 2400))


def test_a_window_across_midnight_shows_the_end_date():
    start = int(datetime.datetime(2026, 12, 5, 23, 30).astimezone().timestamp())
    assert window_text(start, start + 3600).startswith("2026-12-05 23:30-2026-12-06 00:30 ")


def test_the_booking_log_line_carries_the_readable_window(caplog):
    start = int(datetime.datetime(2026, 12, 5, 18, 30).astimezone().timestamp())
    with caplog.at_level(logging.INFO):
        logging.getLogger("hub.domain.booking").info("reservation at %s", Window(start, start + 600))
    assert "2026-12-05 18:30-18:40" in caplog.text and str(start) in caplog.text
