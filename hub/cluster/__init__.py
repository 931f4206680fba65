"""Several hubs on one PostgreSQL (issue 15): what a hub shares with the others, beyond the store.

schema.py      the cluster's own tables: hubs, station_home, station_status, hub_requests
membership.py  hub heartbeats, and which hub is a station's home (with an epoch that fences a stale hub)
status.py      a home hub's live station views, written for every other hub to read
requests.py    hub-to-hub requests: a durable row plus a NOTIFY in one transaction
bus.py         the LISTEN thread: notifications to handlers, and a resync after every (re)connect

PostgreSQL decides; no consensus code of ours. A NOTIFY is only a nudge: every fact it announces is
in a table, so a lost notification delays a change but never loses it (the listener resyncs from
the tables on every connect).
"""
