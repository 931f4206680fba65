"""The client side of the hub for the command-line tools and the tests: connect, authenticate,
ask. Nothing here parses a command line (tools/commands/ does).

Module index:

- hubclient.py       HubClient: a blocking client over the one link loop (tools/client/link.py);
                     HubError; hub_url.
- link.py            the client link: a ClientSession, a framer and a socket, in the blocking form
                     (HubClient) and the asyncio form (the sim's vehicles, the bench's load client).
- credentials.py     where the tools keep the vehicle tokens `evhub vehicles add` issued.
- operator_auth.py   the operator key next to the store; operator_client().
- secret_args.py     --key/--token from a flag, a -file or the environment (not in /proc).
- accounts.py        station and vehicle removal and listing, written to the store.
- provisioned.py     a charge point's capacity as provisioned in the store.
- stationrows.py     station rows: the one validation (connector limit), names, CSV/JSON files.
- station_update.py  `evhub stations update`: fix a provisioned station.
- timetext.py        local times and reservation ids as typed and shown at the terminal.
- vehicle_charge.py  `evhub vehicle start|stop|sessions`: charging from the terminal.
"""
