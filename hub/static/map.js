// The stations map: an SVG drawn from the stations' own coordinates, no tiles, no network.
// Equirectangular projection around the stations' mid latitude, a degree grid with labels,
// a km scale, wheel zoom, drag pan, double-click (or "fit") to fit every station.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const W = 1000, H = 700;
  const STEPS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 45];

  function el(name, attrs, parent) {
    const e = document.createElementNS(SVG, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  class EvMap {
    constructor(svg, onSelect) {
      this.svg = svg;
      this.gGrid = svg.querySelector("#map-grid");
      this.gVehicles = svg.querySelector("#map-vehicles");
      this.gStations = svg.querySelector("#map-stations");
      this.onSelect = onSelect;
      this.stationEls = new Map();
      this.vehicleEls = new Map();
      this.proj = null;
      this.view = { x: 0, y: 0, w: W, h: H };
      this.radius = 7;
      this._wire();
    }

    // --- projection ------------------------------------------------------------------
    fit(points) {
      if (!points.length) return;
      let minLat = Infinity, maxLat = -Infinity, minLon = Infinity, maxLon = -Infinity;
      for (const [lat, lon] of points) {
        minLat = Math.min(minLat, lat); maxLat = Math.max(maxLat, lat);
        minLon = Math.min(minLon, lon); maxLon = Math.max(maxLon, lon);
      }
      const k = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180) || 1e-6;
      let spanX = Math.max((maxLon - minLon) * k, 0.01), spanY = Math.max(maxLat - minLat, 0.01);
      const scale = Math.min((W * 0.86) / spanX, (H * 0.82) / spanY);
      const cx = (minLon + maxLon) / 2, cy = (minLat + maxLat) / 2;
      this.proj = { k, scale, cx, cy };
      this.view = { x: 0, y: 0, w: W, h: H };
      this._applyView();
      this.drawGrid();
      for (const [id, g] of this.stationEls) this._place(g, g._lat, g._lon);
      for (const [id, g] of this.vehicleEls) this._placeVehicle(g, g._lat, g._lon, true);
    }

    xy(lat, lon) {
      const p = this.proj;
      return [W / 2 + (lon - p.cx) * p.k * p.scale, H / 2 - (lat - p.cy) * p.scale];
    }

    latlon(x, y) {
      const p = this.proj;
      return [p.cy - (y - H / 2) / p.scale, p.cx + (x - W / 2) / (p.k * p.scale)];
    }

    // --- grid and scale ----------------------------------------------------------------
    drawGrid() {
      if (!this.proj) return;
      this.gGrid.textContent = "";
      const v = this.view;
      const [latTop, lonLeft] = this.latlon(v.x, v.y);
      const [latBottom, lonRight] = this.latlon(v.x + v.w, v.y + v.h);
      const span = Math.max(lonRight - lonLeft, latTop - latBottom);
      const step = STEPS.find((s) => span / s <= 10) || 90;
      const digits = Math.max(0, Math.ceil(-Math.log10(step)));
      const fs = 11 * v.w / W;
      for (let lon = Math.ceil(lonLeft / step) * step; lon <= lonRight; lon += step) {
        const [x] = this.xy(0, lon);
        el("line", { x1: x, x2: x, y1: v.y, y2: v.y + v.h }, this.gGrid);
        el("text", { x: x + 3 * v.w / W, y: v.y + v.h - 40 * v.h / H, "font-size": fs }, this.gGrid)
          .textContent = lon.toFixed(digits) + "°";
      }
      for (let lat = Math.ceil(latBottom / step) * step; lat <= latTop; lat += step) {
        const [, y] = this.xy(lat, 0);
        el("line", { x1: v.x, x2: v.x + v.w, y1: y, y2: y }, this.gGrid);
        el("text", { x: v.x + v.w - 50 * v.w / W, y: y - 3 * v.h / H, "font-size": fs }, this.gGrid)
          .textContent = lat.toFixed(digits) + "°";
      }
      const km = (v.w / this.proj.scale) * 111.32;  // width of the view in km
      const scale = document.getElementById("scale");
      if (scale) scale.textContent = "view " + (km < 10 ? km.toFixed(2) : km.toFixed(0)) + " km wide";
    }

    // --- stations ---------------------------------------------------------------------------
    setStation(s) {
      let g = this.stationEls.get(s.id);
      if (!g) {
        g = el("g", { class: "station", "data-station": s.id }, this.gStations);
        el("circle", { r: this.radius }, g);
        g._label = el("text", { x: 10, y: 4 }, g);
        const title = el("title", {}, g);
        g._title = title;
        g.addEventListener("click", (ev) => { ev.stopPropagation(); this.onSelect(s.id); });
        this.stationEls.set(s.id, g);
      }
      g._lat = s.lat; g._lon = s.lon;
      g.setAttribute("class", "station st-" + s.status + (g._selected ? " selected" : ""));
      g._label.textContent = s.name ? s.id + " " + s.name : s.id;  // the city, when provisioned with one
      g._title.textContent = s.id + (s.name ? " · " + s.name : "") + " · " + s.status;
      if (this.proj) this._place(g, s.lat, s.lon);
    }

    _place(g, lat, lon) {
      const [x, y] = this.xy(lat, lon);
      g.setAttribute("transform", "translate(" + x.toFixed(1) + "," + y.toFixed(1) + ") scale(" +
        (this.view.w / W).toFixed(4) + ")");
    }

    select(id) {
      for (const [sid, g] of this.stationEls) {
        g._selected = sid === id;
        g.classList.toggle("selected", g._selected);
      }
    }

    showLabels(on) {  // many stations: smaller dots, names only in their tooltips
      this.radius = on ? 7 : 4;
      for (const g of this.stationEls.values()) {
        g.querySelector("text").style.display = on ? "" : "none";
        g.querySelector("circle").setAttribute("r", this.radius);
      }
    }

    // --- vehicles ---------------------------------------------------------------------------
    setVehicle(v) {
      if (v.lat == null || v.lon == null) return;
      let g = this.vehicleEls.get(v.id);
      const fresh = !g;
      if (!g) {
        g = el("g", { class: "vehicle", "data-vehicle": v.id }, this.gVehicles);
        el("path", { d: "M0,-6 L5,4 L-5,4 Z" }, g);
        el("title", {}, g).textContent = v.id;
        const label = el("text", { x: 7, y: 3, class: "vehicle-label" }, g);
        label.textContent = v.id;
        label.style.display = this.vehicleEls.size < 60 ? "" : "none";  // a crowd of labels is noise
        this.vehicleEls.set(v.id, g);
      }
      g._lat = v.lat; g._lon = v.lon;
      if (this.proj) this._placeVehicle(g, v.lat, v.lon, fresh);
    }

    _placeVehicle(g, lat, lon, jump) {
      const [x, y] = this.xy(lat, lon);
      if (jump) g.style.transition = "none";
      g.style.transform = "translate(" + x.toFixed(1) + "px," + y.toFixed(1) + "px) scale(" + (this.view.w / W).toFixed(4) + ")";
      if (jump) { g.getBoundingClientRect(); g.style.transition = ""; }
    }

    // --- zoom and pan ---------------------------------------------------------------------
    _applyView() {
      const v = this.view;
      this.svg.setAttribute("viewBox", [v.x, v.y, v.w, v.h].map((n) => n.toFixed(2)).join(" "));
    }

    _svgPoint(ev) {
      const r = this.svg.getBoundingClientRect();
      const s = Math.max(this.view.w / r.width, this.view.h / r.height);
      const ox = (r.width * s - this.view.w) / 2, oy = (r.height * s - this.view.h) / 2;
      return [this.view.x + (ev.clientX - r.left) * s - ox, this.view.y + (ev.clientY - r.top) * s - oy, s];
    }

    _rescaleMarks() {
      for (const g of this.stationEls.values()) this._place(g, g._lat, g._lon);
      for (const g of this.vehicleEls.values()) this._placeVehicle(g, g._lat, g._lon, true);
      this.drawGrid();
    }

    _wire() {
      this.svg.addEventListener("wheel", (ev) => {
        if (!this.proj) return;
        ev.preventDefault();
        const [px, py] = this._svgPoint(ev);
        const f = ev.deltaY > 0 ? 1.25 : 0.8;
        const v = this.view;
        const w = Math.min(Math.max(v.w * f, 2), W * 8);
        const h = w * H / W;
        this.view = { x: px - (px - v.x) * (w / v.w), y: py - (py - v.y) * (h / v.h), w, h };
        this._applyView();
        this._rescaleMarks();
      }, { passive: false });
      let drag = null;
      this.svg.addEventListener("pointerdown", (ev) => {
        drag = { x: ev.clientX, y: ev.clientY, v: { ...this.view }, s: this._svgPoint(ev)[2], moved: false };
      });
      window.addEventListener("pointermove", (ev) => {
        if (!drag) return;
        const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
        if (Math.abs(dx) + Math.abs(dy) > 3) { drag.moved = true; this.svg.classList.add("dragging"); }
        this.view = { ...drag.v, x: drag.v.x - dx * drag.s, y: drag.v.y - dy * drag.s };
        this._applyView();
      });
      window.addEventListener("pointerup", () => {
        if (drag && drag.moved) this.drawGrid();
        drag = null;
        this.svg.classList.remove("dragging");
      });
    }
  }

  window.EvMap = EvMap;
})();
