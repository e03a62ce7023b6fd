/* Small bar charts as inline SVG, drawn here (no library, nothing fetched: the page's policy allows only this
 * origin). One slot per local date of the range the API answered (from..to); a date the API has no figures
 * for stays an empty slot. Each date with figures is a <g class="day" data-date="YYYY-MM-DD"> holding one
 * <rect> per part (stacked from the bottom) and a <title> with its numbers, so a pointer or a screen reader
 * gets the values and the browser tests can read them back.
 * Used by home.js (the fleet's daily uptime %) and store.js (a store's daily up / down / unobserved hours).
 */
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const WIDTH = 900;
  const HEIGHT = 220;
  const PAD = { left: 44, right: 8, top: 10, bottom: 26 };

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /* The local dates first..last ("YYYY-MM-DD", both included), as calendar dates (no zone involved). */
  function datesBetween(first, last) {
    const out = [];
    const end = Date.parse(`${last}T00:00:00Z`);
    for (let t = Date.parse(`${first}T00:00:00Z`); t <= end; t += 86400000) out.push(new Date(t).toISOString().slice(0, 10));
    return out;
  }

  /* A round step for about four gridlines up to max. */
  function niceStep(max) {
    const raw = max / 4;
    const power = 10 ** Math.floor(Math.log10(raw));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= raw) return m * power;
    return 10 * power;
  }

  /* Draw into `box` (emptied first).
   *   from, to:  the range's first and last local date (the API's "from" and "to")
   *   days:      [{date, parts: [{key, value}], title}] oldest first; value null draws no rect
   *   series:    {key: {label, color}} in stacking order (the legend)
   *   max:       the top of the axis (default: the largest stacked total, at least 1)
   *   unit:      appended to the axis numbers ("%", " h")
   *   label:     the chart's accessible name */
  function bars(box, { from, to, days, series, max, unit, label }) {
    const dates = datesBetween(from, to);
    const index = new Map(dates.map((d, i) => [d, i]));
    const totals = days.map((d) => d.parts.reduce((sum, p) => sum + (p.value || 0), 0));
    const top = max || Math.max(1, ...totals);
    const step = niceStep(top);
    const plotW = WIDTH - PAD.left - PAD.right;
    const plotH = HEIGHT - PAD.top - PAD.bottom;
    const slot = plotW / Math.max(1, dates.length);
    const barW = Math.max(1, slot * 0.8);
    const y = (v) => PAD.top + plotH - (Math.min(v, top) / top) * plotH;

    const root = svg("svg", {
      class: "bars",
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      role: "img",
      "aria-label": label,
      "data-from": from,
      "data-to": to,
    });
    const grid = svg("g", { class: "axis", "aria-hidden": "true" });
    for (let v = 0; v <= top + 1e-9; v += step) {
      grid.append(svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(v), y2: y(v), stroke: "#d7d7d7" }));
      grid.append(svg("text", { x: PAD.left - 4, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#555" },
        `${Number(v.toFixed(2))}${unit || ""}`));
    }
    const marks = dates.length > 2 ? [0, Math.floor((dates.length - 1) / 2), dates.length - 1] : dates.map((_, i) => i);
    for (const i of marks) {
      const anchor = i === 0 ? "start" : i === dates.length - 1 ? "end" : "middle";
      const x = i === 0 ? PAD.left : i === dates.length - 1 ? WIDTH - PAD.right : PAD.left + (i + 0.5) * slot;
      grid.append(svg("text", { x, y: HEIGHT - 8, "text-anchor": anchor, "font-size": 11, fill: "#555" }, dates[i]));
    }
    root.append(grid);

    const plot = svg("g", { class: "days" });
    days.forEach((day) => {
      const i = index.get(day.date);
      if (i === undefined) return;
      const g = svg("g", { class: "day", "data-date": day.date });
      for (const p of day.parts) g.setAttribute(`data-${p.key}`, p.value === null || p.value === undefined ? "" : String(p.value));
      g.append(svg("title", {}, day.title));
      let base = 0;
      for (const p of day.parts) {
        if (p.value === null || p.value === undefined) continue;
        const h = y(base) - y(base + p.value);
        g.append(svg("rect", {
          class: `part part-${p.key}`,
          x: (PAD.left + i * slot + (slot - barW) / 2).toFixed(2),
          y: y(base + p.value).toFixed(2),
          width: barW.toFixed(2),
          height: Math.max(0, h).toFixed(2),
          fill: series[p.key].color,
        }));
        base += p.value;
      }
      plot.append(g);
    });
    root.append(plot);

    const legend = document.createElement("ul");
    legend.className = "legend";
    for (const s of Object.values(series)) {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.setAttribute("aria-hidden", "true");
      swatch.dataset.color = s.color;
      item.append(swatch, s.label);
      legend.append(item);
    }
    box.replaceChildren(root, legend);
    // A swatch's colour through the CSSOM (allowed by the policy, unlike a style attribute in markup).
    for (const swatch of legend.querySelectorAll(".swatch")) swatch.style.background = swatch.dataset.color;
    return root;
  }

  window.Loop.charts = { bars, datesBetween };
})();
