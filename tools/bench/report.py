"""The human-readable report of a bench run (``--json`` prints the dict instead)."""


def _fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        v = ("%.3f" % v) if abs(v) < 10 else ("%.1f" % v) if abs(v) < 1000 else ("%.0f" % v)
    return "%s%s" % (v, unit)


def _load(r):
    lines = [
        "scenario %s, %d connections, %d stations, %s, %gs measured"
        % (r["scenario"], r["connections"], r["stations"], r["mode"], r["duration_s"]),
        "  hub:      %s ops/s   p50 %s  p95 %s  p99 %s  p99.9 %s  max %s   errors %s  refused %s  dropped %s"
        % (
            _fmt(r["ops_per_s"]),
            _fmt(r["p50_ms"], " ms"),
            _fmt(r["p95_ms"], " ms"),
            _fmt(r["p99_ms"], " ms"),
            _fmt(r.get("p999_ms"), " ms"),
            _fmt(r.get("max_ms"), " ms"),
            r["errors"],
            r["refused"],
            r["dropped"],
        ),
        "            hub RSS %s (peak %s, %s once connected)  hub CPU %s  client CPU %s"
        % (
            _fmt(r.get("hub_rss_mb"), " MB"),
            _fmt(r.get("hub_hwm_mb"), " MB"),
            _fmt(r.get("hub_rss_ready_mb"), " MB"),
            _fmt(r.get("hub_cpu_pct"), "%"),
            _fmt(r.get("client_cpu_pct"), "%"),
        ),
    ]
    b = r.get("baseline")
    if b:
        lines.append(
            "  echo:     %s ops/s   p50 %s  p95 %s  p99 %s   errors %s  (server CPU %s, client CPU %s)"
            % (
                _fmt(b["ops_per_s"]),
                _fmt(b["p50_ms"], " ms"),
                _fmt(b["p95_ms"], " ms"),
                _fmt(b["p99_ms"], " ms"),
                b["errors"],
                _fmt(b.get("server_cpu_pct"), "%"),
                _fmt(b.get("client_cpu_pct"), "%"),
            )
        )
        lines.append("  ratio:    %s of the echo ceiling" % (_fmt(r.get("ratio"))))
    if r.get("runs"):
        lines.append(
            "  runs (best of each reported above): %s"
            % "; ".join(
                "hub %s echo %s" % (_fmt(x["hub_ops_per_s"]), _fmt(x["echo_ops_per_s"]))
                if x["echo_ops_per_s"] is not None
                else "hub %s ops/s p99 %s ms" % (_fmt(x["hub_ops_per_s"]), _fmt(x["hub_p99_ms"]))
                for x in r["runs"]
            )
        )
    if "positions_sent" in r:
        lines.append(
            "  positions sent %d, hub counted %s, final PING barrier %s s"
            % (r["positions_sent"], r.get("hub_positions_counted", "-"), _fmt(r.get("barrier_s")))
        )
    if "reserved_ok" in r:
        lines.append(
            "  reservations confirmed %d (%s/s), conflicts %d, confirmed in the store %s, double bookings %s"
            % (
                r["reserved_ok"],
                _fmt(r["reserved_ok_per_s"]),
                r["reserve_conflicts"],
                r.get("confirmed_in_store", "-"),
                r.get("double_bookings", "-"),
            )
        )
    engines = r.get("engines") or {}
    for engine, e in sorted(engines.items(), key=lambda kv: kv[0] != "sqlite"):  # --db postgresql://: both, one run
        lines.append(
            "  %-10s confirmed %s/s, decided %s ops/s, p50 %s ms, p99 %s ms, in the store %s, double bookings %s"
            % (
                engine,
                _fmt(e.get("reserved_ok_per_s")),
                _fmt(e.get("ops_per_s")),
                _fmt(e.get("p50_ms")),
                _fmt(e.get("p99_ms")),
                e.get("confirmed_in_store", "-"),
                e.get("double_bookings", "-"),
            )
        )
    for who, prof in (("hub", r.get("profile")), ("echo", (b or {}).get("profile"))):
        if prof and prof.get("samples"):
            lines.append("  %s profile (%d busy samples, %s): top self time" % (who, prof["samples"], prof.get("file")))
            for pct, frame in prof["self"][:12]:
                lines.append("    %5.1f%%  %s" % (pct, frame))
            lines.append("  %s profile: top inclusive time" % who)
            for pct, frame in prof["inclusive"][:12]:
                lines.append("    %5.1f%%  %s" % (pct, frame))
    if r.get("worst_ms_per_second"):
        lines.append("  worst latency per second (ms): %s" % " ".join("%g" % v for v in r["worst_ms_per_second"]))
    for key in ("error_samples", "refused_samples"):
        if r.get(key):
            lines.append("  %s: %s" % (key.replace("_", " "), "; ".join(r[key])))
    return "\n".join(lines)


def _micro(r):
    lines = ["micro benchmarks (python %s)" % r.get("python", "?")]
    for section, values in r.items():
        if isinstance(values, dict):
            lines.append("  %s:" % section)
            for k, v in values.items():
                lines.append("    %-40s %s" % (k, _fmt(v)))
        elif section not in ("scenario", "python"):
            lines.append("  %-42s %s" % (section, _fmt(values)))
    return "\n".join(lines)


def render(r):
    if r.get("scenario") == "ocpp":
        from tools.bench.ocpp import render as render_ocpp

        return render_ocpp(r)
    return _micro(r) if r.get("scenario") == "micro" else _load(r)
