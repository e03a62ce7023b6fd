/* Home: stores down now (GET /alerts/: the open count), data freshness (GET /overview/, with its lag behind
 * the server's clock in words), the fleet's daily uptime % over the last CHART_DAYS dates (GET /trends/?days=,
 * an SVG chart: charts.js), the stores that fell most this week (GET /trends/movers/), the latest report with
 * its live progress and CSV link, and the trigger button (POST /trigger_report/). */
"use strict";

(function () {
  const { getJSON, postJSON, downloadLink, showError, showNotice, clearMessages, ready, fmtTime, fmtNum, el, storeHref, charts } =
    window.Loop;
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 1000;
  const MOVERS = 10;
  const UP = "#2e7d32";
  let pollTimer = null;

  function renderFreshness(o) {
    $("newest-poll").textContent = o.newest_poll_utc ? fmtTime(o.newest_poll_utc) : "no polls loaded";
    $("oldest-poll").textContent = fmtTime(o.oldest_poll_utc);
    $("store-count").textContent = fmtNum(o.stores);
    $("polls-last-hour").textContent =
      `${fmtNum(o.polls_last_hour)} (${fmtNum(o.inactive_polls_last_hour)} inactive, ` +
      `${fmtNum(o.stores_polled_last_hour)} stores)`;
    $("freshness").setAttribute("aria-busy", "false");
    // The API's words (loop.freshness): the newest poll against the server's clock when it answered.
    $("data-lag").textContent = o.newest_poll_utc ? `${o.data_lag_text} (newest poll ${fmtTime(o.newest_poll_utc)}).` : o.data_lag_text;
  }

  function renderTrend(trend) {
    const box = $("fleet-chart");
    $("fleet-none").hidden = trend.days.length > 0;
    charts.bars(box, {
      from: trend.from,
      to: trend.to,
      max: 100,
      unit: "%",
      label: `Fleet uptime % per local date, ${trend.from} to ${trend.to}`,
      series: { "uptime-pct": { label: "Uptime % of business time", color: UP } },
      days: trend.days.map((d) => ({
        date: d.date_local,
        parts: [{ key: "uptime-pct", value: d.uptime_pct }],
        title:
          `${d.date_local}: ${d.uptime_pct === null ? "no business time" : `${fmtNum(d.uptime_pct, 2)}% up`} ` +
          `(${fmtNum(d.uptime_hours, 2)} h up, ${fmtNum(d.downtime_hours, 2)} h down, ` +
          `${fmtNum(d.unobserved_hours, 2)} h unobserved; ${d.stores_down} of ${d.stores_open} open stores had downtime)`,
      })),
    });
    box.setAttribute("aria-busy", "false");
  }

  function renderMovers(m) {
    $("movers-weeks").textContent =
      `Uptime % of business time, ${m.this_week.from} to ${m.this_week.to} against ${m.previous_week.from} to ` +
      `${m.previous_week.to}; largest fall first.`;
    $("movers-none").hidden = m.stores.length > 0;
    $("movers-table").tBodies[0].replaceChildren(
      ...m.stores.map((s) =>
        el(
          "tr",
          { "data-store-id": s.store_id },
          el("th", { scope: "row" }, el("a", { href: storeHref(s.store_id), text: s.store_id })),
          el("td", { class: "num", text: `${fmtNum(s.this_week_pct, 2)}%` }),
          el("td", { class: "num", text: `${fmtNum(s.previous_week_pct, 2)}%` }),
          el("td", { class: "num", text: s.change_pct === null ? "–" : `${s.change_pct > 0 ? "+" : ""}${fmtNum(s.change_pct, 2)}` }),
        ),
      ),
    );
  }

  async function loadHistory() {
    // Apart from the overview, its error said in its own section: the page's message stays the overview's.
    const days = Number($("fleet-chart").dataset.days);
    try {
      const [trend, movers] = await Promise.all([getJSON(`/trends/?days=${days}`), getJSON(`/trends/movers/?limit=${MOVERS}`)]);
      renderTrend(trend);
      renderMovers(movers);
    } catch (err) {
      $("history-error").textContent = `Loading the daily figures: ${err.message}`;
      $("history-error").hidden = false;
    }
  }

  function renderReport(r) {
    $("report-none").hidden = Boolean(r);
    $("report-details").hidden = !r;
    const running = r && r.status === "Running";
    $("report-progress-box").hidden = !running;
    $("report-links").hidden = !(r && r.status === "Complete");
    $("report-error").hidden = !(r && r.status === "Failed");
    if (!r) return;
    const status = $("report-status");
    status.textContent = r.status;
    status.className = `status status-${r.status.toLowerCase()}`;
    $("report-now").textContent = fmtTime(r.now);
    $("report-created").textContent = fmtTime(r.created_at);
    $("report-rows").textContent = r.rows === undefined ? "–" : fmtNum(r.rows);
    if (running) {
      $("report-progress").value = r.progress || 0;
      $("report-progress").textContent = `${r.progress || 0}%`;
      $("report-phase").textContent = `(${r.phase || "queued"}, ${r.progress || 0}%)`;
    }
    if (r.status === "Complete") {
      downloadLink($("report-csv"), `/get_report/${r.report_id}/csv/`, `report-${r.report_id}.csv`);
      $("report-table").href = `/dashboard/stores/?report=${encodeURIComponent(r.report_id)}`;
    }
    if (r.status === "Failed") {
      $("report-error").textContent = "The report failed. See the report history for its error.";
    }
  }

  async function showFailure(r) {
    // The summary has no error text: the report itself says why.
    try {
      const full = await getJSON(`/get_report/${r.report_id}/`);
      $("report-error").textContent = `The report failed: ${full.error || "unknown error"}`;
    } catch (err) {
      showError(err, "Reading the failed report");
    }
  }

  function renderDownNow(alerts) {
    const unacked = alerts.open_unacknowledged ? `, ${fmtNum(alerts.open_unacknowledged)} not acknowledged` : "";
    $("down-now").textContent = `${fmtNum(alerts.open)} store${alerts.open === 1 ? "" : "s"}${unacked}`;
  }

  async function load() {
    const [o, alerts] = await Promise.all([getJSON("/overview/"), getJSON("/alerts/?page_size=1")]);
    renderDownNow(alerts);
    renderFreshness(o);
    renderReport(o.latest_report);
    if (o.latest_report && o.latest_report.status === "Failed") await showFailure(o.latest_report);
    if (o.latest_report && o.latest_report.status === "Running") schedulePoll();
  }

  function schedulePoll() {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, POLL_MS);
  }

  async function poll() {
    // While Running: the newest report's summary (cheap), then everything once it has finished.
    try {
      const page = await getJSON("/reports/?page=1&page_size=1");
      const r = page.results[0];
      if (r && r.status === "Running") {
        renderReport(r);
        schedulePoll();
      } else {
        if (r) showNotice(`The report is ${r.status}.`); // replaces "Report started."
        await load();
      }
    } catch (err) {
      showError(err, "Following the report");
      schedulePoll();
    }
  }

  $("trigger-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = $("trigger");
    button.disabled = true;
    clearMessages();
    try {
      const force = $("trigger-force").checked;
      const { status, body } = await postJSON("/trigger_report/", force ? { force: true } : {});
      if (status === 200 && body.reused) {
        showNotice("Nothing changed since the last report of the newest data: that report answers.");
      } else {
        showNotice("Report started.");
      }
      await load();
      schedulePoll();
    } catch (err) {
      showError(err, "Triggering a report");
    } finally {
      button.disabled = false;
    }
  });

  Promise.all([load().catch((err) => showError(err, "Loading the overview")), loadHistory()]).finally(ready);
})();
