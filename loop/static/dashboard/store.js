/* One store: zone and hours (GET /stores/<id>/), its state now in words and its alert history
 * (GET /alerts/stores/?store_id=, GET /alerts/?state=all&store_id=), the week's timeline as a chart (business
 * time up / down / unobserved; closed time blank), its outages and daily uptime (GET /stores/<id>/timeline/), and
 * its last CHART_DAYS local dates' up / down / unobserved hours (GET /stores/<id>/history/?days=, SVG: charts.js). */
"use strict";

(function () {
  const { getJSON, showError, ready, fmtTime, fmtLocal, fmtClock, fmtDuration, fmtNum, el, charts } = window.Loop;
  const $ = (id) => document.getElementById(id);
  const storeId = $("store-root").dataset.storeId;
  const base = `/stores/${encodeURIComponent(storeId)}`;
  const DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
  const COLORS = { up: "#2e7d32", down: "#c62828", unobserved: "#9e9e9e" };

  /* An ISO string with an offset, read as the store's wall clock: ms on a UTC-based scale. */
  function wall(iso) {
    const m = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?/.exec(iso);
    if (!m) throw new Error(`Unexpected time ${iso}`);
    const ms = m[7] ? Number(`0.${m[7]}`) * 1000 : 0;
    return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0), ms);
  }

  const DAY_MS = 86400000;
  const dateOf = (ms) => new Date(ms).toISOString().slice(0, 10);

  /* Split [start, end) local wall time at midnights: one floating bar per local day. */
  function pieces(startIso, endIso) {
    const out = [];
    let s = wall(startIso);
    const e = wall(endIso);
    while (s < e) {
      const midnight = Math.floor(s / DAY_MS) * DAY_MS;
      const stop = Math.min(e, midnight + DAY_MS);
      out.push({ y: dateOf(s), x: [(s - midnight) / 3600000, (stop - midnight) / 3600000] });
      s = stop;
    }
    return out;
  }

  function renderStore(s) {
    // The store directory's entry (null when unknown).
    $("store-profile-name").textContent = s.name || "–";
    $("store-profile-where").textContent = [s.brand, s.region].filter((part) => part).join(" / ") || "–";
    $("store-zone").textContent = s.timezone || "–";
    $("store-last-poll").textContent = fmtTime(s.last_poll_utc);
    $("store-last-status").textContent = s.last_status || "–";
    const hours = s.business_hours || [];
    const body = $("hours-table").tBodies[0];
    if (!hours.length) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: "3", text: "Open 24 hours, 7 days (no hours stored)" })));
      return;
    }
    body.replaceChildren(
      ...hours.map((h) =>
        el(
          "tr",
          {},
          el("td", { text: DAYS[h.dayOfWeek] || String(h.dayOfWeek) }),
          el("td", { text: h.start_time_local }),
          el("td", { text: h.end_time_local }),
        ),
      ),
    );
  }

  /* "down since 11:42 local, 1 h 18 min" from the store's state and its open alert (the API's rules). */
  function nowSentence(state, open) {
    if (!state) return "No poll stored for this store.";
    const age = `last poll ${fmtTime(state.last_poll_utc)}, ${fmtDuration(state.last_poll_age_minutes)} before the newest poll`;
    if (state.state === "no_data") {
      const still = open ? ` (its alert since ${fmtClock(open.started_at_local)} local stays open)` : "";
      return `No data: ${age}${still}.`;
    }
    if (state.state === "down" && open) {
      const local = open.started_at_local ? `${fmtClock(open.started_at_local)} local` : fmtTime(open.started_at);
      const ack = open.acknowledged_by ? `; acknowledged by ${open.acknowledged_by}` : "; not acknowledged";
      return `Down since ${local} (${fmtTime(open.started_at)}), ${fmtDuration(open.down_minutes)}${ack}.`;
    }
    return `No open alert: ${age}.`;
  }

  function renderAlerts(states, history) {
    const state = states.results[0] || null;
    const open = state && state.alert_id ? history.results.find((a) => a.alert_id === state.alert_id) : null;
    const now = $("store-now");
    now.textContent = nowSentence(state, open);
    now.className = `store-now state-${state ? state.state : "none"}`;
    $("alert-count").textContent = history.count > history.results.length
      ? `latest ${history.results.length} of ${history.count}`
      : String(history.count);
    $("alert-history-box").open = history.count > 0;
    $("alerts-table").tBodies[0].replaceChildren(
      ...history.results.map((a) =>
        el(
          "tr",
          { "data-alert-id": a.alert_id },
          el("td", { text: a.started_at_local ? fmtLocal(a.started_at_local) : fmtTime(a.started_at) }),
          el("td", { text: a.resolved_at ? fmtTime(a.resolved_at) : "open" }),
          el("td", { class: "num", text: fmtDuration(a.down_minutes) }),
          el("td", { text: a.acknowledged_by || "–" }),
        ),
      ),
    );
  }

  function renderTimeline(t, Chart) {
    const sum = t.summary;
    $("timeline-summary").textContent =
      `${fmtTime(t.from)} to ${fmtTime(t.to)}, drawn in ${t.timezone} time: up ${fmtNum(sum.uptime_hours, 1)} h, ` +
      `down ${fmtNum(sum.downtime_hours, 1)} h, unobserved ${fmtNum(sum.unobserved_hours, 1)} h; ` +
      `uptime ${fmtNum(sum.uptime_pct, 1)}%, ${sum.outages} outage(s), longest ${fmtNum(sum.longest_outage_minutes)} min.`;
    const series = { up: [], down: [], unobserved: [] };
    for (const seg of t.segments) {
      const list = series[seg.observed ? seg.status : "unobserved"];
      for (const piece of pieces(seg.start_local, seg.end_local)) {
        // Segments of one kind on one day less than a minute apart are drawn as one bar: a pixel of the
        // chart is over a minute, so the gap would only show as a hairline.
        const last = list[list.length - 1];
        if (last && last.y === piece.y && piece.x[0] - last.x[1] < 1 / 60) last.x[1] = Math.max(last.x[1], piece.x[1]);
        else list.push(piece);
      }
    }
    const labels = (t.days || []).map((d) => d.date_local);
    for (const list of Object.values(series)) for (const p of list) if (!labels.includes(p.y)) labels.push(p.y);
    labels.sort();
    new Chart($("timeline-chart"), {
      type: "bar",
      data: {
        labels,
        datasets: Object.entries(series).map(([kind, data]) => ({
          label: kind === "unobserved" ? "Unobserved" : kind === "up" ? "Up" : "Down",
          data,
          backgroundColor: COLORS[kind],
          grouped: false,
          barPercentage: 0.9,
          categoryPercentage: 1,
        })),
      },
      options: {
        indexAxis: "y",
        animation: false,
        maintainAspectRatio: false,
        scales: {
          x: { min: 0, max: 24, ticks: { stepSize: 3 }, title: { display: true, text: "Local hour" } },
          y: { title: { display: true, text: "Local day" } },
        },
        plugins: {
          tooltip: {
            callbacks: {
              label: (ctx) => {
                const [a, b] = ctx.raw.x;
                const hm = (h) => `${String(Math.floor(h)).padStart(2, "0")}:${String(Math.round((h % 1) * 60)).padStart(2, "0")}`;
                return `${ctx.dataset.label} ${hm(a)}–${hm(b)}`;
              },
            },
          },
        },
      },
    });

    const outages = t.outages || [];
    $("outages-none").hidden = outages.length > 0;
    $("outages-table").tBodies[0].replaceChildren(
      ...outages.map((o) =>
        el(
          "tr",
          {},
          el("td", { text: fmtLocal(o.start_local) }),
          el("td", { text: fmtLocal(o.end_local) }),
          el("td", { class: "num", text: fmtNum(o.minutes) }),
        ),
      ),
    );

    const days = t.days || [];
    new Chart($("daily-chart"), {
      type: "bar",
      data: {
        labels: days.map((d) => d.date_local),
        datasets: [
          { label: "Uptime %", data: days.map((d) => d.uptime_pct), backgroundColor: COLORS.up },
        ],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        plugins: { legend: { display: false } },
        scales: { y: { min: 0, max: 100, title: { display: true, text: "Uptime % of business time" } } },
      },
    });
  }

  function renderHistory(h) {
    const days = h.days;
    const sum = (key) => days.reduce((total, d) => total + d[key], 0);
    const up = sum("uptime_hours");
    const down = sum("downtime_hours");
    $("history-summary").textContent = days.length
      ? `${h.from} to ${h.to} (local dates): up ${fmtNum(up, 1)} h, down ${fmtNum(down, 1)} h, unobserved ` +
        `${fmtNum(sum("unobserved_hours"), 1)} h over ${days.length} date(s) with figures; ` +
        `${days.reduce((n, d) => n + d.outages, 0)} outage(s).`
      : `${h.from} to ${h.to}: no daily figures for this store in that range.`;
    charts.bars($("history-chart"), {
      from: h.from,
      to: h.to,
      unit: " h",
      label: `Business hours up, down and unobserved per local date, ${h.from} to ${h.to}`,
      series: {
        "uptime-hours": { label: "Up", color: COLORS.up },
        "downtime-hours": { label: "Down", color: COLORS.down },
        "unobserved-hours": { label: "Unobserved", color: COLORS.unobserved },
      },
      days: days.map((d) => ({
        date: d.date_local,
        parts: [
          { key: "uptime-hours", value: d.uptime_hours },
          { key: "downtime-hours", value: d.downtime_hours },
          { key: "unobserved-hours", value: d.unobserved_hours },
        ],
        title:
          `${d.date_local}: ${fmtNum(d.uptime_hours, 2)} h up, ${fmtNum(d.downtime_hours, 2)} h down, ` +
          `${fmtNum(d.unobserved_hours, 2)} h unobserved; ${d.outages} outage(s)` +
          (d.uptime_pct === null ? "" : `; ${fmtNum(d.uptime_pct, 2)}% up`),
      })),
    });
    $("history-chart").setAttribute("aria-busy", "false");
  }

  async function loadHistory() {
    // Apart from the rest, its error said in its own section: the page's message stays the store's.
    try {
      renderHistory(await getJSON(`${base}/history/?days=${Number($("history-chart").dataset.days)}`));
    } catch (err) {
      $("history-error").textContent = `Loading the daily figures: ${err.message}`;
      $("history-error").hidden = false;
    }
  }

  async function load() {
    // Both reads at once; a store the API does not know is its 404 message.
    const id = encodeURIComponent(storeId);
    const [store, timeline, states, history] = await Promise.all([
      getJSON(`${base}/`),
      getJSON(`${base}/timeline/`),
      getJSON(`/alerts/stores/?store_id=${id}`),
      getJSON(`/alerts/?state=all&store_id=${id}&page_size=20`),
    ]);
    renderStore(store);
    renderAlerts(states, history);
    renderTimeline(timeline, await window.Loop.chartLibrary());
  }

  Promise.all([load().catch((err) => showError(err, `Loading store ${storeId}`)), loadHistory()]).finally(ready);
})();
