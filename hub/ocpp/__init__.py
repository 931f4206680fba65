"""OCPP 1.6J: commercial chargers beside our own boards (issue 16).

The translation between OCPP and evhub's own kinds, kept pure (no I/O, no actors) so every rule
has a unit test; the WebSocket central system that uses it comes next.

Modules:

- ``meter``: MeterValues as chargers send them (decimal strings, Wh or kWh, per-phase rows, a
  missing measurand meaning the energy register) -> evhub's integer ``energy_wh`` / ``power_w``.
- ``central`` (one charger: what it sends, and its evhub side), ``commands`` (what the hub asks of it:
  calls, ReserveNow timers) and ``server`` (the listener, auth, profiles).
- ``mapping``: the fixed correspondences: connector statuses (SuspendedEVSE added), stop reasons,
  ISO-8601 times, transaction ids <-> session ids, idTags <-> vehicles, and when to send
  ReserveNow for one of evhub's future windows (OCPP reserves from now until an expiry).
"""
