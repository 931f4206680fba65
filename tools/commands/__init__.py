"""The `evhub` subcommands: thin argparse modules, one per command. Each has ``configure(parser)``
(its arguments) and ``run(args) -> int`` (call the logic, map its errors to an exit code from
tools/common/exitcodes.py); tools/cli.py registers them in its COMMANDS table.

Module index (the device commands bundle, flash, console and pty-pair are registered in tools/cli.py
beside these):

- serve.py         `evhub serve`: the hub daemon.
- stations.py      `evhub stations add|import|update|list|remove`.
- vehicles.py      `evhub vehicles add|list|remove`: vehicle tokens.
- vehicle.py       `evhub vehicle`: the manual vehicle client (position, nearest, reserve, charge...).
- chargepoint.py   `evhub chargepoint`: a simulated charge point (the firmware core on CPython).
- reservations.py  `evhub reservations list|cancel`: the operator's reservation book.
- sessions.py      `evhub sessions export`: billing records.
- db.py            `evhub db backup`.
- ocpp.py          `evhub ocpp`: the OCPP 1.6J central system.
- sim.py           `evhub sim`: the laptop simulation (tools/sim/).
- bench.py         `evhub bench`: load and micro benchmarks (tools/bench/).
"""
