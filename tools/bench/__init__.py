"""`evhub bench`: load a real hub over loopback and report throughput, latency and memory.

Modules (/proc figures come from tools/common/procstat.py, the hub from tools/common/hubproc.py):
  provision  a throwaway database with N stations (over REGION) and the vehicles the connections need
  echo       the do-nothing echo server (the ceiling of this machine and this client)
  loadgen    the load client (its own process): handshakes, closed or open loop, latencies
  runner     starts the hub / echo server and the clients, gathers the figures
  clients    the load client processes: start, go, sample the server, merge
  conn       one load connection: the real handshake (tools/client/link.py), then the lean path
  latency    the latency histogram and its percentiles
  inproc     the hub's Link + Router in-process, no socket (micro, tests/test_nearest_fast_path.py)
  ocpp       the OCPP scenario: simulated chargers against the hub's central system
  profile    py-spy sampling over the measured window
  micro/     micro benchmarks: codec, framing, hub loop, locator, conflict check, firmware heap
  report     the human-readable report

Figures are printed, never asserted (tests/test_bench.py checks only the shape): machines
are shared and noisy, so the headline figure is a ratio measured side by side in one run.
"""
