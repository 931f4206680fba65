"""`evhub bench`: load a real hub over loopback and report throughput, latency and memory.

Modules:
  provision  a throwaway database with N stations and the vehicles the connections need
  procstat   RSS and CPU of a process from /proc; the open-file limit
  echo       the do-nothing echo server (the ceiling of this machine and this client)
  loadgen    the load client (its own process): handshakes, closed or open loop, latencies
  runner     starts the hub / echo server and the clients, gathers the figures
  micro      micro benchmarks: codec, framing, locator, conflict check, firmware heap
  report     the human-readable report

Figures are printed, never asserted (tests/test_bench.py checks only the shape): machines
are shared and noisy, so the headline figure is a ratio measured side by side in one run.
"""
