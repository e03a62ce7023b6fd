/* Worst stores: the latest Complete report (or ?report=<id>) as a sortable, searchable, paged table,
 * the spread of week uptime % over all stores, and the stores down in the last hour.
 *
 * Uptime % of a window = 100 * up / (up + down) from the report's Loop columns, so the table works on
 * any report format; a window without business time has no % (shown as "–", sorted last). */
"use strict";

(function () {
  const { getJSON, getText, showError, ready, fmtNum, el, storeHref } = window.Loop;
  const $ = (id) => document.getElementById(id);
  const PAGE_SIZE = 25;
  // First click on a column: worst first (uptime ascending, downtime descending); store ids A-Z.
  const FIRST_DIRECTION = {
    store_id: 1, pct_hour: 1, pct_day: 1, pct_week: 1, down_hour: -1, down_day: -1, down_week: -1,
  };
  let rows = [];
  let shown = [];
  let sortKey = "pct_week";
  let sortDir = 1;
  let page = 0;

  /* RFC 4180 CSV (quoted fields, doubled quotes, CRLF) into arrays of strings. */
  function parseCsv(text) {
    if (!text.includes('"')) {
      // No quoted field (the usual report): plain splits, several times faster on 3,678 rows.
      return text.split(/\r?\n/).filter((line) => line !== "").map((line) => line.split(","));
    }
    const out = [];
    let row = [];
    let field = "";
    let quoted = false;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (quoted) {
        if (c === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i++;
          } else quoted = false;
        } else field += c;
      } else if (c === '"') quoted = true;
      else if (c === ",") {
        row.push(field);
        field = "";
      } else if (c === "\n" || c === "\r") {
        if (c === "\r" && text[i + 1] === "\n") i++;
        row.push(field);
        out.push(row);
        row = [];
        field = "";
      } else field += c;
    }
    if (field !== "" || row.length) {
      row.push(field);
      out.push(row);
    }
    return out;
  }

  function pct(up, down) {
    const total = up + down;
    return total > 0 ? (100 * up) / total : null;
  }

  function storeIdOf(cell) {
    // The CSV writes an id starting with = + - @ as '=...' (spreadsheet safety): the store's id has no quote.
    return /^'[=+\-@]/.test(cell) ? cell.slice(1) : cell;
  }

  function toRows(table) {
    const header = table[0];
    const col = (name) => {
      const i = header.indexOf(name);
      if (i < 0) throw new Error(`The report has no ${name} column.`);
      return i;
    };
    const c = {
      id: col("store_id"),
      uh: col("uptime_last_hour"), ud: col("uptime_last_day"), uw: col("uptime_last_week"),
      dh: col("downtime_last_hour"), dd: col("downtime_last_day"), dw: col("downtime_last_week"),
    };
    return table.slice(1).filter((r) => r.length >= header.length).map((r) => {
      const n = (i) => Number(r[i]);
      return {
        store_id: storeIdOf(r[c.id]),
        label: r[c.id],
        pct_hour: pct(n(c.uh), n(c.dh)),
        pct_day: pct(n(c.ud), n(c.dd)),
        pct_week: pct(n(c.uw), n(c.dw)),
        down_hour: n(c.dh),
        down_day: n(c.dd),
        down_week: n(c.dw),
      };
    });
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

  function refresh() {
    const needle = $("search").value.trim().toLowerCase();
    shown = rows.filter((r) => !needle || r.store_id.toLowerCase().includes(needle));
    shown.sort(compare);
    const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
    page = Math.min(page, pages - 1);
    const body = $("stores-table").tBodies[0];
    const cells = shown.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE).map((r) =>
      el(
        "tr",
        {},
        el("th", { scope: "row" }, el("a", { href: storeHref(r.store_id), text: r.store_id })),
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
        el("li", {}, el("a", { href: storeHref(r.store_id), text: r.store_id }), ` ${fmtNum(r.down_hour, 0)} min`),
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
    const wanted = new URLSearchParams(location.search).get("report");
    let report;
    if (wanted) {
      report = { report_id: wanted, ...(await getJSON(`/get_report/${encodeURIComponent(wanted)}/`)) };
      if (report.status !== "Complete") {
        throw new Error(
          report.status === "Failed" ? `That report failed: ${report.error}` : "That report is still Running.",
        );
      }
    } else {
      const latest = await getJSON("/reports/?status=Complete&page=1&page_size=1");
      report = latest.results[0];
      if (!report) {
        $("report-caption").textContent = "No complete report yet: trigger one on the home page.";
        return;
      }
    }
    const text = report.csv_data || (await getText(`/get_report/${report.report_id}/csv/`, "text/csv, application/json;q=0.9"));
    // Timings of the steps for the benchmark (bench/bench_dashboard.py prints them).
    performance.mark("dashboard:csv");
    rows = toRows(parseCsv(text));
    performance.measure("dashboard:parse", "dashboard:csv");
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
