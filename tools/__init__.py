"""The `evhub` command (tools/cli.py: one table of subcommands) and its packages:

- ``commands/``  thin argparse per subcommand: configure(parser), run(args) -> exit status
- ``client/``    HubClient, the one client link, credentials, operator auth
- ``device/``    the board side: bundle, romfs, flash (a plan of steps), console, pty pair
- ``sim/``       `evhub sim`: charge points and vehicles on this machine
- ``bench/``     `evhub bench`, with micro/ for the micro benchmarks
- ``common/``    the one `evhub serve` launcher, /proc reader, tool finder, logged process, exit codes
- ``data/``      the simulation's station map
"""
