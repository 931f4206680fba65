// evhub operator dashboard: a snapshot from the JSON API, then live updates from /api/events.
// Events that arrive while a snapshot loads are held and applied after it, in order.
"use strict";

(function () {
  const S = { stations: new Map(), sessions: new Map(), reservations: new Map(), vehicles: new Map() };
  const clock = { skew: 0, speedup: 1, epoch0: 0 };
  const LOG_MAX = 60, RES_MAX = 200;
  let selected = null, loading = false, held = [], map = null, es = null, dirty = new Set();
  let tablesDirty = false, frame = 0, fitted = false;
  const rowsById = new Map();  // station id -> its <tr>, so one change touches one row

  const $ = (sel) => document.querySelector(sel);
  const api = (path) => fetch(path, { headers: { Accept: "application/json" } }).then((r) => {
    if (!r.ok) return r.json().catch(() => ({})).then((b) => { throw new Error(b.error || r.status); });
    return r.json();
  });

  // --- hub time ----------------------------------------------------------------------------
  function setClock(h) {
    clock.speedup = h.speedup || 1;
    clock.epoch0 = h.epoch0 || h.time;
    const hubReal = clock.epoch0 + (h.time - clock.epoch0) / clock.speedup;
    clock.skew = hubReal - Date.now() / 1000;
  }
  function hubNow() {
    const real = Date.now() / 1000 + clock.skew;
    return clock.epoch0 + (real - clock.epoch0) * clock.speedup;
  }
  const pad = (n) => String(n).padStart(2, "0");
  function hhmm(t, secs) {
    if (t == null) return "–";
    const d = new Date(t * 1000);
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + (secs ? ":" + pad(d.getSeconds()) : "");
  }
  // A window with its date when it is not today (hub time): "18:30–19:10", "Sat 5 Dec 18:30–19:10".
  function span(start, end) {
    const d = new Date(start * 1000), today = new Date(hubNow() * 1000);
    const sameDay = d.toDateString() === today.toDateString();
    const day = sameDay ? "" : d.toLocaleDateString(undefined, { weekday: "short", day: "numeric", month: "short" }) + " ";
    return day + hhmm(start) + "–" + hhmm(end);
  }
  function ago(t) {
    if (t == null) return "never";
    const s = Math.max(0, Math.round(hubNow() - t));
    return s < 90 ? s + " s ago" : s < 5400 ? Math.round(s / 60) + " min ago" : Math.round(s / 3600) + " h ago";
  }
  function freeText(s) {
    if (s.status === "Available") return "Free now";
    if (s.status === "Offline") return "Offline";
    if (s.free_in_min == null) return "–";
    return "Free in " + s.free_in_min + " min";
  }
  const kwh = (wh) => (wh == null ? "–" : (wh / 1000).toFixed(2) + " kWh");

  function td(text, cls) {
    const c = document.createElement("td");
    c.textContent = text;
    if (cls) c.className = cls;
    return c;
  }
  function row(cells, attrs) {
    const r = document.createElement("tr");
    for (const c of cells) r.appendChild(typeof c === "string" ? td(c) : c);
    for (const k in attrs || {}) r.setAttribute(k, attrs[k]);
    return r;
  }
  function badge(status) {
    const c = document.createElement("td");
    c.className = "status";
    const b = document.createElement("span");
    b.className = "badge st-" + status;
    b.textContent = status;
    c.appendChild(b);
    return c;
  }
  function conns(s) {
    const c = document.createElement("td");
    c.className = "conns";
    const keys = Object.keys(s.connector_status || {}).sort((a, b) => a - b);
    const offline = s.status === "Offline" || s.online === false;
    let free = 0;
    for (const k of keys) {
      // An offline station's last report is history, not availability: grey, never "free".
      const st = offline ? "Unavailable" : s.connector_status[k];
      if (st === "Available") free++;
      const i = document.createElement("i");
      i.className = "c-" + st;
      i.title = "connector " + k + ": " + st;
      c.appendChild(i);
    }
    c.appendChild(document.createTextNode(offline ? " offline" : " " + free + "/" + keys.length + " free"));
    return c;
  }
  function empty(tbody, cols, text) {
    if (tbody.children.length) return;
    const r = row([text], { class: "empty" });
    r.firstChild.colSpan = cols;
    tbody.appendChild(r);
  }

  // --- rendering (batched per animation frame) ----------------------------------------------
  function schedule() { if (!frame) frame = requestAnimationFrame(render); }
  function render() {
    frame = 0;
    if (!fitted && map && S.stations.size) {
      map.fit([...S.stations.values()].map((s) => [s.lat, s.lon]));
      map.showLabels(S.stations.size <= 80);
      fitted = true;
    }
    for (const id of dirty) renderStation(id);
    dirty.clear();
    if (tablesDirty) { renderSessions(); renderReservations(); tablesDirty = false; }
    renderKpis();
  }
  function capText(c) { return c.connectors + " × " + c.max_kw + " kW"; }
  function mismatchText(m) {  // provisioned vs reported capacity (hub/capacity.py)
    return "provisioned " + capText(m.provisioned) + ", station reports " + capText(m.reported) + "; using " + capText(m.used);
  }
  function idCell(s) {  // a marker in the table when provisioning and the station disagree
    const c = td(s.id, "id");
    if (s.name) {
      const n = document.createElement("span");
      n.className = "place";
      n.textContent = " " + s.name;
      c.appendChild(n);
    }
    if (s.mismatch) {
      const m = document.createElement("span");
      m.className = "mismatch";
      m.textContent = " ⚠";
      m.title = "capacity mismatch: " + mismatchText(s.mismatch);
      c.appendChild(m);
    }
    return c;
  }
  function stationRow(s) {
    const r = row([idCell(s), badge(s.status), td(freeText(s), "free"), conns(s),
      td(s.online ? ago(s.last_heartbeat || s.last_seen) : "–", "hb")], { "data-station": s.id });
    if (s.id === selected) r.classList.add("selected");
    r.addEventListener("click", () => select(s.id));
    return r;
  }
  function renderStation(id) {
    const s = S.stations.get(id);
    if (!s) return;
    map.setStation(s);
    const tbody = $("#stations-table tbody");
    const old = rowsById.get(id);
    const r = stationRow(s);
    rowsById.set(id, r);
    if (old) {
      if (old.querySelector(".status").textContent !== s.status) r.classList.add("flash");
      tbody.replaceChild(r, old);
    } else {
      const after = [...rowsById.keys()].filter((k) => k > id).sort()[0];
      tbody.insertBefore(r, after ? rowsById.get(after) : null);
    }
    if (id === selected) renderDetailFacts(s);
  }
  function renderAllStations() {  // after a snapshot: one pass, one DOM insertion
    const tbody = $("#stations-table tbody");
    const frag = document.createDocumentFragment();
    rowsById.clear();
    for (const id of [...S.stations.keys()].sort()) {
      const s = S.stations.get(id);
      map.setStation(s);
      const r = stationRow(s);
      rowsById.set(id, r);
      frag.appendChild(r);
    }
    tbody.textContent = "";
    tbody.appendChild(frag);
    dirty.clear();
  }
  function renderSessions() {
    const tbody = $("#sessions-table tbody");
    tbody.textContent = "";
    const list = [...S.sessions.values()].sort((a, b) => (a.started || 0) - (b.started || 0));
    for (const x of list) {
      tbody.appendChild(row([x.station_id + " #" + x.connector, x.vehicle_id || "–", kwh(x.energy_wh),
        x.power_w == null ? "–" : (x.power_w / 1000).toFixed(1) + " kW", hhmm(x.expected_end)],
      { "data-session": x.session_id }));
    }
    empty(tbody, 5, "no session running");
  }
  function renderReservations() {
    const tbody = $("#reservations-table tbody");
    tbody.textContent = "";
    const list = [...S.reservations.values()].sort((a, b) => a.start - b.start || a.reservation_id - b.reservation_id);
    for (const r of list.slice(0, RES_MAX)) {
      tbody.appendChild(row([String(r.reservation_id), r.station_id, r.vehicle_id,
        span(r.start, r.end)], { "data-reservation": r.reservation_id }));
    }
    empty(tbody, 4, "no open reservation");
  }
  function renderKpis() {
    let online = 0, available = 0;
    for (const s of S.stations.values()) { if (s.online) online++; if (s.status === "Available") available++; }
    $("#kpi-stations").textContent = S.stations.size;
    $("#kpi-online").textContent = online;
    $("#kpi-available").textContent = available;
    $("#kpi-sessions").textContent = S.sessions.size;
    $("#kpi-reservations").textContent = S.reservations.size;
    $("#kpi-vehicles").textContent = S.vehicles.size;
  }

  // --- station detail ------------------------------------------------------------------------
  function select(id) {
    selected = id;
    map.select(id);
    for (const r of document.querySelectorAll("#stations-table tbody tr")) r.classList.toggle("selected", r.dataset.station === id);
    $("#detail").hidden = false;
    renderDetailFacts(S.stations.get(id) || { id, status: "?" });
    loadDetail();
  }
  function renderDetailFacts(s) {
    $("#detail-title").textContent = s.name ? s.id + " · " + s.name : s.id;
    const facts = $("#detail-facts");
    facts.textContent = "";
    const add = (k, v) => { const dt = document.createElement("dt"); dt.textContent = k; const dd = document.createElement("dd"); dd.textContent = v; facts.append(dt, dd); };
    add("Status", s.status);
    add("Free", freeText(s));
    if (s.lat != null) add("Position", s.lat.toFixed(5) + ", " + s.lon.toFixed(5));
    if (s.max_kw != null) add("Max power", s.max_kw + " kW");
    if (s.mismatch) add("Capacity mismatch", mismatchText(s.mismatch));
    add("Heartbeat", s.online ? ago(s.last_heartbeat || s.last_seen) : "offline");
    const ul = $("#detail-connectors");
    ul.textContent = "";
    for (const k of Object.keys(s.connector_status || {}).sort((a, b) => a - b)) {
      const li = document.createElement("li");
      li.dataset.connector = k;
      li.className = "conns";
      const i = document.createElement("i");
      i.className = "c-" + s.connector_status[k];
      li.append(i, document.createTextNode("#" + k + " " + s.connector_status[k]));
      ul.appendChild(li);
    }
  }
  let detailTimer = 0;
  function refreshDetailSoon(stationId) {
    if (stationId !== selected || detailTimer) return;
    detailTimer = setTimeout(() => { detailTimer = 0; loadDetail(); }, 300);
  }
  function loadDetail() {
    const id = selected;
    if (!id) return;
    const enc = encodeURIComponent(id);
    Promise.all([api("/api/stations/" + enc), api("/api/stations/" + enc + "/sessions?limit=10")]).then(([st, hist]) => {
      if (id !== selected) return;
      const sb = $("#detail-sessions");
      sb.textContent = "";
      for (const x of hist.sessions) {
        sb.appendChild(row([x.session_id.slice(0, 10), x.vehicle_id || "–", kwh(x.energy_wh),
          x.live ? "charging since " + hhmm(x.started) : hhmm(x.started) + "–" + hhmm(x.ended)]));
      }
      empty(sb, 4, "no sessions yet");
      const rb = $("#detail-reservations");
      rb.textContent = "";
      for (const r of st.reservations) {
        rb.appendChild(row([String(r.reservation_id), r.vehicle_id, span(r.start, r.end), "#" + r.connector]));
      }
      empty(rb, 4, "no open reservation");
    }).catch((e) => logLine("detail of " + id + ": " + e.message));
  }

  // --- events ----------------------------------------------------------------------------------
  function logLine(text) {
    const li = document.createElement("li");
    const t = document.createElement("time");
    t.textContent = hhmm(hubNow(), true);
    li.append(t, document.createTextNode(text));
    const log = $("#log");
    log.insertBefore(li, log.firstChild);
    while (log.children.length > LOG_MAX) log.removeChild(log.lastChild);
  }
  function putStation(s) { S.stations.set(s.id, s); dirty.add(s.id); if (!map.proj) fitted = false; }
  const handlers = {
    station(d) {
      const old = S.stations.get(d.id);
      putStation(d);
      if (!old) fitted = false;
      if (old && old.status !== d.status) logLine(d.id + ": " + old.status + " → " + d.status);
      refreshDetailSoon(d.id);
    },
    reservation(d) {
      if (d.state === "confirmed") S.reservations.set(d.reservation_id, d);
      else S.reservations.delete(d.reservation_id);
      logLine("reservation " + d.reservation_id + " at " + d.station_id + " for " + d.vehicle_id + ": " + d.state);
      tablesDirty = true;
      refreshDetailSoon(d.station_id);
    },
    session_start(d) {
      S.sessions.set(d.session_id, d);
      logLine(d.station_id + " #" + d.connector + ": charging " + (d.vehicle_id || "a vehicle"));
      tablesDirty = true;
      refreshDetailSoon(d.station_id);
    },
    meter(d) {
      const x = S.sessions.get(d.session_id);
      if (x) { x.energy_wh = d.energy_wh; x.power_w = d.power_w; tablesDirty = true; }
    },
    session_end(d) {
      S.sessions.delete(d.session_id);
      logLine(d.station_id + " #" + d.connector + ": session complete, " + kwh(d.energy_wh) + " (" + d.reason + ")");
      tablesDirty = true;
      refreshDetailSoon(d.station_id);
    },
    positions(d) {
      for (const v of d.vehicles) { S.vehicles.set(v.id, v); map.setVehicle(v); }
    },
  };
  function onEvent(kind, ev) {
    let data;
    try { data = JSON.parse(ev.data); } catch (e) { return; }
    if (loading) { held.push([kind, data]); return; }
    handlers[kind](data);
    schedule();
  }

  function loadSnapshot() {
    loading = true;
    held = [];
    return Promise.all([api("/api/health"), api("/api/stations"), api("/api/sessions"),
      api("/api/reservations?limit=1000"), api("/api/vehicles")]).then(([h, st, se, re, ve]) => {
      setClock(h);
      tick();
      S.stations.clear(); S.sessions.clear(); S.reservations.clear();
      for (const s of st.stations) S.stations.set(s.id, s);
      if (map.proj === null) map.fit(st.stations.map((s) => [s.lat, s.lon]));
      renderAllStations();
      for (const x of se.sessions) S.sessions.set(x.session_id, x);
      for (const r of re.reservations) S.reservations.set(r.reservation_id, r);
      for (const v of ve.vehicles) { S.vehicles.set(v.id, v); map.setVehicle(v); }
      fitted = false;
      tablesDirty = true;
    }).catch((e) => logLine("loading failed: " + e.message)).finally(() => {
      loading = false;
      for (const [kind, data] of held) handlers[kind](data);
      held = [];
      render();
      document.body.dataset.ready = "1";
    });
  }

  function connect() {
    es = new EventSource("/api/events");
    for (const kind of Object.keys(handlers)) es.addEventListener(kind, (ev) => onEvent(kind, ev));
    es.onopen = () => {
      $("#conn").textContent = "live";
      $("#conn").className = "conn live";
      loadSnapshot();  // on every (re)connect: the hub may have restarted meanwhile
    };
    es.onerror = () => {
      $("#conn").textContent = "reconnecting…";
      $("#conn").className = "conn off";
    };
  }

  function tick() {
    $("#clock").textContent = hhmm(hubNow(), true) + (clock.speedup !== 1 ? " ×" + clock.speedup : "");
  }

  const same = (a, b) => a.status === b.status && a.free_in_min === b.free_in_min && a.online === b.online &&
    JSON.stringify(a.connector_status) === JSON.stringify(b.connector_status);
  function refreshStations() {  // heartbeat ages; only rows that really changed are rebuilt
    if (loading) return;
    api("/api/stations").then((st) => {
      for (const s of st.stations) {
        const old = S.stations.get(s.id), r = rowsById.get(s.id);
        if (old && r && same(old, s)) {
          Object.assign(old, s);
          r.querySelector(".hb").textContent = s.online ? ago(s.last_heartbeat || s.last_seen) : "–";
        } else putStation(s);
      }
      schedule();
    }).catch(() => {});
  }

  document.addEventListener("DOMContentLoaded", () => {
    map = new window.EvMap($("#map"), select);
    $("#fit").addEventListener("click", () => { fitted = false; schedule(); });
    $("#map").addEventListener("dblclick", () => { fitted = false; schedule(); });
    $("#detail-close").addEventListener("click", () => {
      selected = null; map.select(null); $("#detail").hidden = true;
      for (const r of document.querySelectorAll("#stations-table tr.selected")) r.classList.remove("selected");
    });
    connect();
    setInterval(tick, 1000);
    setInterval(refreshStations, 10000);  // heartbeat ages; the stream carries every status change
  });
})();
