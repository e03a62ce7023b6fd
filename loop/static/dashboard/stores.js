/* Worst stores: the latest Complete report (or ?report=<id>) as a sortable, searchable, paged table,
 * the spread of week uptime % over all stores, and the stores down in the last hour.
 *
 * The rows and each window's uptime % come from the API (GET /reports/<id>/stores/), for any report
 * format; a window without business time has no % (null: shown as "–", sorted last). Each store's state
 * now (down since / no data / ok) and last poll age come from GET /alerts/stores/ (the rule is the API's). */
"use strict";

(function () {
  const { getJSON, showError, ready, fmtNum, fmtTime, fmtDuration, el, storeHref } = window.Loop;
  const $ = (id) => document.getElementById(id);
  const PAGE_SIZE = 25;
  // First click on a column: worst first (uptime ascending, downtime descending); store ids A-Z.
  const FIRST_DIRECTION = {
    store_id: 1, state_rank: 1, poll_age: -1, pct_hour: 1, pct_day: 1, pct_week: 1, down_hour: -1, down_day: -1, down_week: -1,
  };
  // Down first, then no data, then ok (a store the states do not list: last).
  const STATE_RANK = { down: 0, no_data: 1, ok: 2 };
  let states = new Map();
  let rows = [];
  let shown = [];
  let sortKey = "pct_week";
  let sortDir = 1;
  let page = 0;

  function toRows(results) {
    return results.map((r) => ({
      store_id: r.store_id,
      now: states.get(r.store_id) || null,
      state_rank: states.has(r.store_id) ? STATE_RANK[states.get(r.store_id).state] : null,
      poll_age: states.has(r.store_id) ? states.get(r.store_id).last_poll_age_minutes : null,
      // From the store directory (null when unknown): shown beside the id and searched too.
      name: r.name ?? null,
      region: r.region ?? null,
      pct_hour: r.uptime_pct_last_hour,
      pct_day: r.uptime_pct_last_day,
      pct_week: r.uptime_pct_last_week,
      down_hour: r.downtime_last_hour,
      down_day: r.downtime_last_day,
      down_week: r.downtime_last_week,
    }));
  }

  function compare(a, b) {
    const x = a[sortKey];
    const y = b[sortKey];
    if (x !== y) {
      if (x === null) return 1; // no value: last, whichever the direction
      if (y === null) return -1;
      if (sortKey === "store_id") return sortDir * (x < y ? -1 : 1);
      return sortDir * (x - y);
    }
    return a.store_id < b.store_id ? -1 : a.store_id > b.store_id ? 1 : 0;
  }

  /* The store's name and region under its id, when the directory knows them (text only: never HTML). */
  function directoryNote(r) {
    const parts = [r.name, r.region].filter((part) => part);
    return parts.length ? [el("br", {}), el("span", { class: "hint store-name", text: parts.join(" · ") })] : [];
  }

  /* "down since 10:20 UTC" / "no data" / "ok" (text only). */
  function nowText(now) {
    if (!now) return "–";
    if (now.state === "down") return `down since ${fmtTime(now.down_since)}`;
    return now.state === "no_data" ? "no data" : "ok";
  }

  function nowCell(r) {
    if (!r.now) return el("td", { text: "–" });
    return el("td", {}, el("span", { class: `state state-${r.now.state}`, text: nowText(r.now) }));
  }

  function ageText(r) {
    return r.now ? `${fmtDuration(r.now.last_poll_age_minutes)}` : "–";
  }

  function refresh() {
    const needle = $("search").value.trim().toLowerCase();
    shown = rows.filter(
      (r) =>
        !needle || r.store_id.toLowerCase().includes(needle) || (r.name || "").toLowerCase().includes(needle),
    );
    shown.sort(compare);
    const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
    page = Math.min(page, pages - 1);
    const body = $("stores-table").tBodies[0];
    const cells = shown.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE).map((r) =>
      el(
        "tr",
        { "data-store-id": r.store_id, class: r.now ? `row-${r.now.state}` : null },
        el("th", { scope: "row" }, el("a", { href: storeHref(r.store_id), text: r.store_id }), ...directoryNote(r)),
        nowCell(r),
        el("td", { class: "num", text: ageText(r), title: r.now ? `last poll ${fmtTime(r.now.last_poll_utc)}` : null }),
        el("td", { class: "num", text: fmtNum(r.pct_hour, 1) }),
        el("td", { class: "num", text: fmtNum(r.pct_day, 1) }),
        el("td", { class: "num", text: fmtNum(r.pct_week, 1) }),
        el("td", { class: "num", text: fmtNum(r.down_hour, 2) }),
        el("td", { class: "num", text: fmtNum(r.down_day, 2) }),
        el("td", { class: "num", text: fmtNum(r.down_week, 2) }),
      ),
    );
    body.replaceChildren(...cells);
    $("table-count").textContent = needle ? `${shown.length} of ${rows.length} stores match` : `${rows.length} stores`;
    $("page-info").textContent = `Page ${page + 1} of ${pages}`;
    $("prev-page").disabled = page === 0;
    $("next-page").disabled = page >= pages - 1;
    for (const th of document.querySelectorAll("#stores-table th[data-key]")) {
      const active = th.dataset.key === sortKey;
      th.setAttribute("aria-sort", active ? (sortDir === 1 ? "ascending" : "descending") : "none");
    }
  }

  function renderSpread(Chart) {
    const buckets = new Array(10).fill(0);
    let without = 0;
    for (const r of rows) {
      if (r.pct_week === null) without++;
      else buckets[Math.min(9, Math.floor(r.pct_week / 10))]++;
    }
    const labels = buckets.map((_, i) => (i === 9 ? "90–100" : `${i * 10}–${i * 10 + 10}`));
    new Chart($("spread-chart"), {
      type: "bar",
      data: { labels, datasets: [{ label: "Stores", data: buckets, backgroundColor: "#3465a4" }] },
      options: {
        animation: false,
        maintainAspectRatio: false,
        plugins: { legend: { display: false } },
        scales: {
          x: { title: { display: true, text: "Uptime % over the week" } },
          y: { beginAtZero: true, title: { display: true, text: "Stores" }, ticks: { precision: 0 } },
        },
      },
    });
    $("spread-note").textContent = without
      ? `${without} store(s) had no business time in the week and are not counted.`
      : "";
  }

  function renderDown() {
    const down = rows.filter((r) => r.down_hour > 0);
    down.sort((a, b) => b.down_hour - a.down_hour || (a.store_id < b.store_id ? -1 : 1));
    $("down-none").hidden = down.length > 0;
    $("down-title").textContent = `Down in the last hour (${down.length} of ${rows.length} stores)`;
    $("down-list").replaceChildren(
      ...down.map((r) =>
        el(
          "li",
          { "data-store-id": r.store_id, class: r.now ? `row-${r.now.state}` : null },
          el("a", { href: storeHref(r.store_id), text: r.store_id }),
          ` ${fmtNum(r.down_hour, 0)} min · `,
          el("span", { class: `state state-${r.now ? r.now.state : "none"}`, text: nowText(r.now) }),
          ` · last poll ${ageText(r)} before the newest`,
        ),
      ),
    );
  }

  for (const th of document.querySelectorAll("#stores-table th[data-key]")) {
    th.querySelector("button").addEventListener("click", () => {
      const key = th.dataset.key;
      sortDir = key === sortKey ? -sortDir : FIRST_DIRECTION[key];
      sortKey = key;
      page = 0;
      refresh();
    });
  }
  $("search").addEventListener("input", () => {
    page = 0;
    refresh();
  });
  $("prev-page").addEventListener("click", () => {
    page = Math.max(0, page - 1);
    refresh();
  });
  $("next-page").addEventListener("click", () => {
    page += 1;
    refresh();
  });

  async function load() {
    let reportId = new URLSearchParams(location.search).get("report");
    if (!reportId) {
      const latest = await getJSON("/reports/?status=Complete&page=1&page_size=1");
      if (!latest.results[0]) {
        $("report-caption").textContent = "No complete report yet: trigger one on the home page.";
        return;
      }
      reportId = latest.results[0].report_id;
    }
    // A Running or Failed report answers 409 with the reason, shown as the page's error.
    const [report, now] = await Promise.all([
      getJSON(`/reports/${encodeURIComponent(reportId)}/stores/`),
      getJSON("/alerts/stores/"),
    ]);
    states = new Map(now.results.map((s) => [s.store_id, s]));
    $("states-clock").textContent = fmtTime(now.newest_poll_utc);
    $("states-gap").textContent = String(now.max_gap_minutes);
    // Timings of the steps for the benchmark (bench/bench_dashboard.py).
    performance.mark("dashboard:rows");
    rows = toRows(report.results);
    $("report-caption").textContent =
      `Report ${report.report_id.slice(0, 8)}… computed at ${window.Loop.fmtTime(report.now)}, ${rows.length} stores.`;
    performance.mark("dashboard:parsed");
    refresh();
    renderDown();
    performance.measure("dashboard:table", "dashboard:parsed");
    const Chart = await window.Loop.chartLibrary();
    performance.mark("dashboard:drawn");
    renderSpread(Chart);
    performance.measure("dashboard:chart", "dashboard:drawn");
  }

  load()
    .catch((err) => showError(err, "Loading the report"))
    .finally(ready);
})();
