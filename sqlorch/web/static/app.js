// sqlorch ui: graph zoom and pan, plots, the run timeline, the live log, partition ranges.
// Every value from the server is put in the page with textContent, never as HTML.
"use strict";

function readJson(id) {
  const el = document.getElementById(id);
  return el ? JSON.parse(el.textContent) : null;
}

function zoomPan(wrap) {
  const svg = wrap.querySelector("svg");
  if (!svg) return;
  const vb = svg.viewBox.baseVal;
  let box = { x: vb.x, y: vb.y, w: vb.width, h: vb.height };
  const apply = () => svg.setAttribute("viewBox", `${box.x} ${box.y} ${box.w} ${box.h}`);
  wrap.addEventListener("wheel", (e) => {
    e.preventDefault();
    const k = e.deltaY < 0 ? 0.85 : 1 / 0.85;
    const r = svg.getBoundingClientRect();
    const px = box.x + ((e.clientX - r.left) / r.width) * box.w;
    const py = box.y + ((e.clientY - r.top) / r.height) * box.h;
    box = { x: px - (px - box.x) * k, y: py - (py - box.y) * k, w: box.w * k, h: box.h * k };
    apply();
  }, { passive: false });
  let drag = null;
  wrap.addEventListener("pointerdown", (e) => {
    if (e.target.closest("a")) return;
    drag = { x: e.clientX, y: e.clientY, box: { ...box } };
  });
  window.addEventListener("pointerup", () => { drag = null; });
  window.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const r = svg.getBoundingClientRect();
    box.x = drag.box.x - ((e.clientX - drag.x) / r.width) * box.w;
    box.y = drag.box.y - ((e.clientY - drag.y) / r.height) * box.h;
    apply();
  });
}

function plots() {
  const series = readJson("series");
  if (!series || typeof uPlot === "undefined") return;
  const xs = series.materialized_at.map((t) => Date.parse(t) / 1000);
  document.querySelectorAll(".plot").forEach((el) => {
    const which = el.dataset.plot;
    const ys = which === "metadata" ? series.metadata[el.dataset.key] : series[which];
    const opts = {
      title: el.dataset.title, width: 440, height: 200,
      series: [{}, { label: el.dataset.title, stroke: "#1a73e8", points: { show: true } }],
    };
    new uPlot(opts, [xs, ys], el);
    el.dataset.ready = "1";
  });
}

function gantt() {
  const el = document.getElementById("gantt");
  const bars = readJson("timeline");
  if (!el || !bars || !bars.length) return;
  const t = (s) => Date.parse(s);
  const start = t(el.dataset.start || bars[0].start);
  const ends = bars.map((b) => t(b.end || b.start));
  const end = el.dataset.end ? t(el.dataset.end) : Math.max(Date.now(), ...ends);
  const span = Math.max(end - start, 1);
  for (const b of bars) {
    const row = document.createElement("div");
    row.className = "g-row";
    const bar = document.createElement("div");
    const s = t(b.start), e = b.end ? t(b.end) : end;
    bar.className = `g-bar ${b.status} ${b.lane}`;
    bar.style.left = `${(100 * (s - start)) / span}%`;
    bar.style.width = `${Math.max((100 * (e - s)) / span, 0.2)}%`;
    bar.title = `${b.label}: ${b.status} ${((e - s) / 1000).toFixed(2)}s`;
    const label = document.createElement("span");
    label.className = "g-label";
    const at = (100 * (s - start)) / span;
    if (at > 60) label.style.right = `calc(${100 - at}% + 4px)`;  // near the end: to the left
    else label.style.left = `calc(${at}% + 4px)`;
    label.textContent = `${b.label} ${((e - s) / 1000).toFixed(2)}s`;
    row.append(bar, label);
    el.append(row);
  }
}

function liveLog() {
  const table = document.getElementById("log");
  if (!table || table.dataset.live !== "1") return;
  const q = new URLSearchParams({ after: table.dataset.next, level: table.dataset.level, asset: table.dataset.asset });
  const source = new EventSource(`/runs/${encodeURIComponent(table.dataset.run)}/stream?${q}`);
  source.addEventListener("log", (msg) => {
    const ev = JSON.parse(msg.data);
    const tr = document.createElement("tr");
    tr.className = ev.level;
    for (const text of [ev.ts.slice(11, 23), ev.level, ev.kind, ev.asset || "", ev.message]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    table.append(tr);
  });
  source.addEventListener("done", () => {
    // the run ended: reload for its final status, counts and timeline
    source.close();
    window.location.reload();
  });
}

function partitionRanges() {
  const start = document.getElementById("range-start");
  const end = document.getElementById("range-end");
  if (!start) return;
  let first = null;
  document.querySelectorAll(".seg").forEach((seg) => {
    seg.addEventListener("click", (e) => {
      document.querySelectorAll(".seg.picked").forEach((s) => s.classList.remove("picked"));
      seg.classList.add("picked");
      if (e.shiftKey && first) {
        const a = [first.dataset.first, seg.dataset.first].sort()[0];
        const b = [first.dataset.last, seg.dataset.last].sort()[1];
        start.value = a; end.value = b;
        first.classList.add("picked");
      } else {
        first = seg; start.value = seg.dataset.first; end.value = seg.dataset.last;
      }
    });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".graph-wrap").forEach(zoomPan);
  plots();
  gantt();
  liveLog();
  partitionRanges();
});
