"""`evhub console` (its arguments: tools/commands/console.py): a serial console that speaks evhub frames.

- ``endpoint``  one end of the line: LineEnd (wire, display, common commands), Monitor, StationEnd
- ``hubend``    HubEnd: the hub end for a charge point, on transport's ServerSession and the hub's Store
- ``commands``  the one table of commands: `help`, `--help` and the dispatch read it
- ``render``    how a frame is shown: time, kind, seq, fields as name=value
- ``typed``     what the person types, parsed (literals, kinds, start times)
- ``lineedit``  the terminal line editor (history, our own echo)
- ``raw``       --raw: a plain terminal for the board's REPL
- ``ports``     opening a pyserial URL, reading what waits on it
- ``run``       the run loops
"""
