"""The OpenAPI 3 description of the HTTP API (GET /api/openapi.json).

Written by hand, next to nothing else; tests/test_http_api.py checks that its paths
and methods are exactly the server's routes, so the two cannot drift apart.
"""

from hub.domain.states import ReservationState
from transport import kinds as K


def _ref(name):
    return {"$ref": "#/components/schemas/%s" % name}


def _json(schema, description="OK"):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description):
    return _json(_ref("Error"), description)


def _param(name, where="query", schema=None, description="", required=None):
    return {
        "name": name,
        "in": where,
        "required": where == "path" if required is None else required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _list(key, item):
    return {"type": "object", "properties": {key: {"type": "array", "items": item}}}


NULL_INT = {"type": "integer", "nullable": True}
NULL_NUM = {"type": "number", "nullable": True}
STATION_ID = _param("station_id", "path", description="station id")
RES_ID = _param("reservation_id", "path", {"type": "integer", "minimum": 1})
LIMIT = _param("limit", schema={"type": "integer", "minimum": 1, "maximum": 1000})
STATE = _param(
    "state",
    schema={
        "type": "string",
        "default": "confirmed",
        "enum": [*ReservationState, "all"],
    },
)
READ_ERRORS = {"401": _err("a token is needed (not on loopback)"), "403": _err("not allowed")}
WRITE_ERRORS = {"401": _err("missing or invalid bearer token"), "403": _err("writes disabled (no token configured)")}

SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}, "alternatives": {"type": "array", "items": _ref("Alternative")}},
    },
    "Station": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "lat": {"type": "number"},
            "lon": {"type": "number"},
            "status": {"type": "string", "enum": list(K.STATION_STATUSES)},
            "free_in_min": {**NULL_INT, "description": "0 when available; null when unknown or offline"},
            "free_at": NULL_INT,
            "connectors": {"type": "integer"},
            "connector_status": {
                "type": "object",
                "additionalProperties": {"type": "string", "enum": list(K.CONNECTOR_STATUSES)},
            },
            "max_kw": {"type": "number"},
            "online": {"type": "boolean"},
            "last_seen": NULL_INT,
            "last_heartbeat": {**NULL_INT, "description": "last frame from the station's link"},
            "name": {"type": ["string", "null"], "description": "place label from provisioning"},
            "mismatch": {
                "type": ["object", "null"],
                "description": "null, or {provisioned, reported, used}: each {connectors, max_kw}; the hub uses `used`",
            },
        },
    },
    "StationDetail": {
        "allOf": [
            _ref("Station"),
            {
                "type": "object",
                "properties": {
                    "sessions": {"type": "array", "items": _ref("LiveSession")},
                    "reservations": {"type": "array", "items": _ref("Reservation")},
                },
            },
        ]
    },
    "Reservation": {
        "type": "object",
        "properties": {
            "reservation_id": {"type": "integer"},
            "station_id": {"type": "string"},
            "vehicle_id": {"type": "string"},
            "connector": {"type": "integer"},
            "start": {"type": "integer"},
            "end": {"type": "integer"},
            "state": {"type": "string", "enum": list(ReservationState)},
        },
    },
    "ReservationRequest": {
        "type": "object",
        "required": ["station_id", "vehicle_id"],
        "additionalProperties": False,
        "properties": {
            "station_id": {"type": "string"},
            "vehicle_id": {"type": "string"},
            "start": {
                "oneOf": [{"type": "integer"}, {"type": "string", "format": "date-time"}],
                "description": "UTC epoch seconds or ISO 8601 with offset; default now",
            },
            "end": {"oneOf": [{"type": "integer"}, {"type": "string", "format": "date-time"}]},
            "duration_min": {"type": "integer", "minimum": 1, "maximum": 1440},
        },
    },
    "Alternative": {
        "type": "object",
        "properties": {
            "station_id": {"type": "string"},
            "start": {"type": "integer"},
            "end": {"type": "integer"},
            "distance_km": {"type": "number"},
        },
    },
    "LiveSession": {
        "type": "object",
        "properties": {
            "session_id": {"type": "string"},
            "station_id": {"type": "string"},
            "connector": {"type": "integer"},
            "vehicle_id": {"type": "string", "nullable": True},
            "reservation_id": NULL_INT,
            "started": {"type": "integer"},
            "expected_end": {"type": "integer"},
            "energy_wh": {"type": "number"},
            "power_w": {"type": "number"},
        },
    },
    "SessionRecord": {
        "type": "object",
        "properties": {
            "session_id": {"type": "string"},
            "station_id": {"type": "string"},
            "connector": {"type": "integer"},
            "vehicle_id": {"type": "string", "nullable": True},
            "reservation_id": NULL_INT,
            "meter_start_wh": NULL_INT,
            "energy_wh": NULL_NUM,
            "started": NULL_INT,
            "ended": NULL_INT,
            "reason": {"type": "string", "nullable": True},
            "live": {"type": "boolean"},
        },
    },
    "Vehicle": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "lat": NULL_NUM,
            "lon": NULL_NUM,
            "time": NULL_NUM,
            "soc": NULL_NUM,
            "connected": {"type": "boolean"},
        },
    },
    "Health": {
        "type": "object",
        "properties": {
            "status": {"type": "string"},
            "time": {"type": "number"},
            "speedup": {"type": "number"},
            "epoch0": NULL_NUM,
            "uptime_s": {"type": "number"},
            "stations": {"type": "integer"},
            "stations_online": {"type": "integer"},
            "stations_by_status": {"type": "object"},
            "links": {"type": "object", "additionalProperties": {"type": "integer"}},
            "vehicles_tracked": {"type": "integer"},
            "sessions_active": {"type": "integer"},
            "counters": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
    },
}

EVENTS_DOC = """Server-sent events (text/event-stream). Each event has an id, a type and JSON data:
station (a Station plus previous_status), reservation (a Reservation), session_start (a LiveSession),
meter ({station_id, connector, session_id, vehicle_id, energy_wh, power_w, time}), session_end
(a SessionRecord), positions ({vehicles: [Vehicle]}, every 2 s, vehicles that moved). Reconnect with
Last-Event-ID to get missed events that are still in the replay ring."""


def spec():
    ok = {"200": _json({"type": "object"})}
    paths = {
        "/api/health": {
            "get": {"summary": "Hub health and counters", "responses": {"200": _json(_ref("Health")), **READ_ERRORS}}
        },
        "/api/stations": {
            "get": {
                "summary": "Every station with status, free_in_min, connectors, last heartbeat",
                "parameters": [_param("status", schema={"type": "string", "enum": list(K.STATION_STATUSES)})],
                "responses": {
                    "200": _json(_list("stations", _ref("Station"))),
                    "400": _err("bad filter"),
                    **READ_ERRORS,
                },
            }
        },
        "/api/stations/{station_id}": {
            "get": {
                "summary": "One station with its live sessions and upcoming reservations",
                "parameters": [STATION_ID],
                "responses": {"200": _json(_ref("StationDetail")), "404": _err("no such station"), **READ_ERRORS},
            }
        },
        "/api/stations/{station_id}/sessions": {
            "get": {
                "summary": "A station's charging sessions, newest first (live ones with current energy)",
                "parameters": [STATION_ID, LIMIT],
                "responses": {
                    "200": _json(_list("sessions", _ref("SessionRecord"))),
                    "400": _err("bad limit"),
                    "404": _err("no such station"),
                    **READ_ERRORS,
                },
            }
        },
        "/api/stations/{station_id}/reservations": {
            "get": {
                "summary": "A station's reservations",
                "parameters": [STATION_ID, STATE, LIMIT],
                "responses": {
                    "200": _json(_list("reservations", _ref("Reservation"))),
                    "400": _err("bad filter"),
                    "404": _err("no such station"),
                    **READ_ERRORS,
                },
            }
        },
        "/api/sessions": {
            "get": {
                "summary": "Charging sessions running now (state=live), or ended ones from the store (state=ended), "
                "by end time, paged with limit/offset; next_offset is null on the last page",
                "parameters": [
                    _param("station_id"),
                    _param("vehicle_id"),
                    _param("state", schema={"type": "string", "enum": ["live", "ended"]}),
                    _param("since"),
                    _param("until"),
                    LIMIT,
                    _param("offset", schema={"type": "integer"}),
                ],
                "responses": {
                    "200": _json(_list("sessions", _ref("LiveSession"))),
                    "400": _err("bad filter"),
                    **READ_ERRORS,
                },
            }
        },
        "/api/reservations": {
            "get": {
                "summary": "Reservations (confirmed ones by default, earliest first)",
                "parameters": [STATE, _param("station_id"), _param("vehicle_id"), LIMIT],
                "responses": {
                    "200": _json(_list("reservations", _ref("Reservation"))),
                    "400": _err("bad filter"),
                    **READ_ERRORS,
                },
            },
            "post": {
                "summary": "Reserve a station for a vehicle (needs the token)",
                "security": [{"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("ReservationRequest")}},
                },
                "responses": {
                    "201": _json({"type": "object", "properties": {"reservation": _ref("Reservation")}}, "confirmed"),
                    "400": _err("invalid request"),
                    "404": _err("no such station"),
                    "409": _err("the window is taken; alternatives are offered"),
                    "415": _err("not JSON"),
                    "503": _err("the book did not answer"),
                    **WRITE_ERRORS,
                },
            },
        },
        "/api/reservations/{reservation_id}": {
            "get": {
                "summary": "One reservation",
                "parameters": [RES_ID],
                "responses": {
                    "200": _json({"type": "object", "properties": {"reservation": _ref("Reservation")}}),
                    "400": _err("bad id"),
                    "404": _err("no such reservation"),
                    **READ_ERRORS,
                },
            },
            "delete": {
                "summary": "Cancel a reservation (needs the token)",
                "parameters": [RES_ID],
                "security": [{"bearer": []}],
                "responses": {
                    "200": _json({"type": "object", "properties": {"reservation": _ref("Reservation")}}, "cancelled"),
                    "400": _err("bad id"),
                    "404": _err("no such reservation"),
                    "409": _err("already ended"),
                    **WRITE_ERRORS,
                },
            },
        },
        "/api/vehicles": {
            "get": {
                "summary": "Vehicles with their last position",
                "responses": {"200": _json(_list("vehicles", _ref("Vehicle"))), **READ_ERRORS},
            }
        },
        "/api/vehicles/{vehicle_id}": {
            "get": {
                "summary": "One vehicle's last position",
                "parameters": [_param("vehicle_id", "path")],
                "responses": {"200": _json(_ref("Vehicle")), "404": _err("no such vehicle"), **READ_ERRORS},
            }
        },
        "/api/events": {
            "get": {
                "summary": "Live events (server-sent events)",
                "description": EVENTS_DOC,
                "parameters": [
                    _param("types", description="comma-separated event types to receive"),
                    _param("Last-Event-ID", "header", {"type": "integer"}, required=False),
                ],
                "responses": {
                    "200": {
                        "description": "an endless event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "400": _err("unknown type"),
                    "503": _err("too many clients"),
                    **READ_ERRORS,
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text exposition format 0.0.4)",
                "responses": {
                    "200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
                    **READ_ERRORS,
                },
            }
        },
        "/api/openapi.json": {"get": {"summary": "This description", "responses": ok}},
        "/": {
            "get": {
                "summary": "The operator dashboard (HTML)",
                "responses": {"200": {"description": "page", "content": {"text/html": {"schema": {"type": "string"}}}}},
            }
        },
        "/static/{name}": {
            "get": {
                "summary": "Dashboard scripts and styles",
                "parameters": [_param("name", "path")],
                "responses": {"200": {"description": "file"}, "404": _err("no such file")},
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "evhub operator API",
            "version": "1",
            "description": "Stations, reservations, sessions and vehicles of a running evhub. Reads are open "
            "on loopback; writes need Authorization: Bearer TOKEN (evhub serve --http-token).",
        },
        "paths": paths,
        "components": {"schemas": SCHEMAS, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{}, {"bearer": []}],
    }
