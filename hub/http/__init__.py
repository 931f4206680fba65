"""The hub's HTTP API, event stream, metrics and dashboard, served from the hub's own asyncio loop.

server.py   HTTP/1.1 on asyncio streams: parsing, limits, routing, auth, JSON errors
api.py      JSON endpoints: stations, sessions, reservations, vehicles, health

live.py     the loop's mirror of live sessions and counters, fed by the EventBus
sse.py      GET /api/events (server-sent events) and the vehicle-position broadcaster
metrics.py  GET /metrics in the Prometheus text exposition format
openapi.py  GET /api/openapi.json, checked against the route table by the tests
app.py      wires it all to a running Hub (hub.daemon)

Nothing here asks an actor and waits: data owned by actors comes from the snapshots they
publish (the registry's view, the tracker's last positions) or from a tell carrying a
callback that hops back to the loop with call_soon_threadsafe.
"""
