"""Requests from the hub to a charge point: RESERVE_NOW, CANCEL_RESERVATION, REMOTE_START,
REMOTE_STOP, CHANGE_AVAILABILITY, CONFIGURE, TRIGGER.

Each handler is ``handler(cp, fields)`` and returns None or a callable that the
charge point runs right after queueing the ACK (so the hub hears ACK first and
then the statuses and records the request caused). ``Refused(code, text)``
becomes an ERROR with the request's seq.
"""

from transport.errors import E_BAD_FIELD, E_FORBIDDEN, E_INVALID_STATE, E_NOT_FOUND

from firmware import config as C
from firmware.charging import ev_check
from firmware.connector import AVAILABLE, BUSY, FAULTED, PREPARING, RESERVED, UNAVAILABLE, Refused


def reserve_now(cp, f):
    rid, number, vehicle, start, end = f[0], f[1], f[2], f[3], f[4]
    if number:  # the connector the hub's book chose: honoured, or refused so the hub picks another
        c = cp.connector(number)
        if c.status in (FAULTED, UNAVAILABLE) or (c.status in BUSY and start - cp.config["hold_before_s"] <= cp.now()):
            raise Refused(E_INVALID_STATE, "connector %d is %s" % (number, c.status))
    r, old = cp.reservations.add(rid, number, vehicle, start, end, len(cp.connectors), cp.now(), cp.config["grace_s"])
    if old is not None:
        cp.release(old)
    cp.log("info", "reservation %d booked: %s, connector %d, %d..%d" % (rid, vehicle, number, start, end))
    return cp.update_holds_now


def cancel_reservation(cp, f):
    r = cp.reservations.get(f[0])
    if r is None:
        raise Refused(E_NOT_FOUND, "no reservation %d" % f[0])
    cp.release(r)
    cp.log("info", "reservation %d cancelled" % r.id)
    return cp.update_holds_now


def remote_start(cp, f):
    number, vehicle, rid, ev = f[0], f[1], f[2], f[3]
    if number < 0 or number > len(cp.connectors):
        raise Refused(E_BAD_FIELD, "connector must be 0..%d" % len(cp.connectors))
    ev_check(ev)
    for c in cp.connectors:
        if c.charge is not None and c.vehicle == vehicle and number in (0, c.number):
            return None  # the hub resent it (its ACK was lost on the line): started once, ACKed again
    if cp.offline:
        raise Refused(E_INVALID_STATE, "station is in offline mode")
    c = _pick(cp, number, vehicle, rid)
    if cp.config.get("evse") is not None and c.vehicle is None:
        # A station with a control pilot knows whether a car is there: no car, no energy (the
        # message is chargepoint.unplug's: one string fewer in the board's RAM).
        raise Refused(E_INVALID_STATE, "nothing is plugged into connector %d" % c.number)

    def start():
        if c.vehicle is None:
            c.remote = True  # no cable event will come: the simulated vehicle leaves by itself
        cp.start_session(c, vehicle, rid, ev, cp.now())

    return start


def _pick(cp, number, vehicle, rid):
    if number:
        c = cp.connectors[number - 1]
        _check_start(cp, c, vehicle, rid)
        return c
    for c in cp.connectors:
        if c.status == RESERVED and c.hold.vehicle == vehicle:
            return c
    for c in cp.connectors:
        if c.status == PREPARING and (c.vehicle == vehicle or c.vehicle == "?") and c.charge is None:
            return c
    for c in cp.connectors:
        if c.free:
            _check_start(cp, c, vehicle, rid)
            return c
    raise Refused(E_INVALID_STATE, "no free connector")


def _check_start(cp, c, vehicle, rid):
    if c.status == RESERVED:
        if c.hold.vehicle != vehicle:
            raise Refused(E_FORBIDDEN, "connector %d is reserved for another vehicle" % c.number)
    elif c.status == PREPARING and c.charge is None:
        # "?": a car the pilot sees, not yet named (firmware/pilot.py PLUGGED): this vehicle takes it
        if c.vehicle is not None and c.vehicle != vehicle and c.vehicle != "?":
            raise Refused(E_FORBIDDEN, "another vehicle is plugged into connector %d" % c.number)
    elif c.status != AVAILABLE:
        raise Refused(E_INVALID_STATE, "connector %d is %s" % (c.number, c.status))
    if rid is not None:
        r = cp.reservations.get(rid)
        if r is not None and r.vehicle != vehicle:
            raise Refused(E_FORBIDDEN, "reservation %d belongs to another vehicle" % rid)


def remote_stop(cp, f):
    sid = f[0]
    for c in cp.connectors:
        if c.session_id == sid:

            def stop():
                cp.end_session(c, "Remote", cp.now())

            return stop
    raise Refused(E_NOT_FOUND, "no running session %s" % sid)


def change_availability(cp, f):
    number, available = f[0], f[1]
    targets = cp.connectors if number == 0 else [cp.connector(number)]
    for c in targets:
        if available:
            c.pending_unavailable = False
            if c.status == UNAVAILABLE:
                cp.set_status(c, AVAILABLE)
        elif c.status in BUSY:
            c.pending_unavailable = True  # after the session, like OCPP's "Scheduled"
        elif c.status != UNAVAILABLE:
            cp.unhold(c)
            cp.set_status(c, UNAVAILABLE)
    return cp.update_holds_now


def configure(cp, f):
    key, value = f[0], f[1]
    known = C.runtime_keys()
    if key not in known:
        raise Refused(E_BAD_FIELD, "unknown configuration key %r (known: %s)" % (key, ", ".join(known)))
    try:
        value = C.check(key, value)
    except ValueError as exc:
        raise Refused(E_BAD_FIELD, str(exc))
    cp.config[key] = value
    if key == "heartbeat_s" and cp.session is not None:
        cp.session.heartbeat_s = value
    elif key == "offline_after_s":
        cp.link.offline_after_s = value
    elif key == "max_kw" or key == "offline_power_kw":
        cp.apply_limits()
    cp.log("info", "configured %s = %r" % (key, value))
    if cp.on_config is not None:
        cp.on_config(key, value)
    return None


def trigger(cp, f):
    what = f[0]
    if what == "boot":
        return cp.send_boot
    if what == "status":
        return cp.report_all
    if what == "meter":
        return cp.meter_all
    raise Refused(E_BAD_FIELD, "trigger must be boot, status or meter")


# kind -> handler, each named after its kind (tests/test_micropython.py checks the numbers against
# the table: the literals build nothing at import, where looking each name up would).
HANDLERS = {
    40: reserve_now,
    41: cancel_reservation,
    42: remote_start,
    43: remote_stop,
    44: change_availability,
    45: configure,
    46: trigger,
}
