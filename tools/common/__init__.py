"""Small pieces every tool (and the tests) share, each in one copy.

Module index:

- hubproc.py         start `evhub serve` as a process on a loopback port and learn its port from
                     the "hub listening on" line (tests/hubproc.py, tools/sim/run.py,
                     tools/bench/runner.py).
- logged_process.py  a background process with its output in a log file it can be waited on.
- procstat.py        CPU seconds and memory (VmRSS, VmHWM) of a process from /proc; the open-file limit.
- toolpath.py        finding an external program (micropython, mpy-cross, esptool, mpremote, py-spy).
- exitcodes.py       the exit status of every `evhub` command.
- storepath.py       which store a provisioning command writes to.
"""
