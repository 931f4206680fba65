"""The idempotency key of RESERVE in the store (migration 4).

reservations.request_id   the vehicle's key for one logical RESERVE (wire field `request_id`),
                          unique per vehicle: a retried RESERVE finds its first answer here, so a
                          vehicle that asks again after a timeout never holds two reservations.
"""

MAX_REQUEST_ID = 64  # characters, as ids on the wire


def reservation_for_request(db, vehicle_id, request_id):
    """(reservation_id, station_id, connector, start, end, state) booked for this key, or None."""
    return db.execute(
        'SELECT id, station_id, connector, start, "end", state FROM reservations'
        " WHERE vehicle_id = ? AND request_id = ?",
        (vehicle_id, request_id),
    ).fetchone()
