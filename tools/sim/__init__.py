"""`evhub sim`: the real hub process, CPython charge points and simulated vehicles on one machine.

Module index:

- run.py      Simulation: provision, start the hub (tools/common/hubproc.py), the charge points and
              the vehicles; run; wind down; close the books.
- options.py  SimOptions: what a run is asked to do, each value checked.
- world.py    where the stations are (tools/data/stations_bahia.csv), the vehicles, distances, times.
- vehicle.py  one vehicle's decisions, sans-I/O (drive, run low, search, reserve, charge).
- agent.py    VehicleAgent: a Pykka actor driving a group of vehicles.
- net.py      VehicleNet: every vehicle's hub link on one asyncio loop (tools/client/link.py).
- ocpp.py     simulated OCPP 1.6J chargers for --ocpp-share.
- books.py    closing the books: the hub's store against what the vehicles saw; the summary.
- display.py  the live terminal map and counters, and the summary text.
"""
