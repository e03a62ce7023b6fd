/* Reports and imports: the report history (GET /reports/) refreshed while any is Running, and
 * uploads of a Loop .zip or the three CSVs (POST /imports/) with upload and import progress. */
"use strict";

(function () {
  const { getJSON, upload, downloadLink, showError, showNotice, clearMessages, ready, fmtTime, fmtNum, el } =
    window.Loop;
  const $ = (id) => document.getElementById(id);
  const PAGE_SIZE = 20;
  const POLL_MS = 1500;
  let page = 1;
  let pages = 1;
  let reportTimer = null;
  let importTimer = null;

  function progressCell(r) {
    if (r.status !== "Running") return el("td", { text: r.status === "Complete" ? "done" : "–" });
    const bar = el("progress", { max: "100", value: String(r.progress || 0), "aria-label": `Report ${r.report_id} progress` });
    return el("td", {}, bar, ` ${r.phase || "queued"} ${r.progress || 0}%`);
  }

  function openCell(r) {
    if (r.status !== "Complete") return el("td", { text: "" });
    const csv = el("a", { text: "CSV" });
    downloadLink(csv, `/get_report/${r.report_id}/csv/`, `report-${r.report_id}.csv`);
    const table = el("a", { href: `/dashboard/stores/?report=${encodeURIComponent(r.report_id)}`, text: "Table" });
    return el("td", {}, table, " · ", csv);
  }

  async function loadReports() {
    clearTimeout(reportTimer);
    const status = $("status-filter").value;
    const query = new URLSearchParams({ page: String(page), page_size: String(PAGE_SIZE) });
    if (status) query.set("status", status);
    const body = await getJSON(`/reports/?${query}`);
    pages = Math.max(1, Math.ceil(body.count / PAGE_SIZE));
    $("reports-table").tBodies[0].replaceChildren(
      ...body.results.map((r) =>
        el(
          "tr",
          { "data-report-id": r.report_id },
          el("th", { scope: "row" }, el("code", { text: `${r.report_id.slice(0, 8)}…`, title: r.report_id })),
          el("td", {}, el("span", { class: `status status-${r.status.toLowerCase()}`, text: r.status })),
          el("td", { text: fmtTime(r.now) }),
          el("td", { text: fmtTime(r.created_at) }),
          el("td", { class: "num", text: r.rows === undefined ? "–" : fmtNum(r.rows) }),
          progressCell(r),
          openCell(r),
        ),
      ),
    );
    if (!body.results.length) {
      $("reports-table").tBodies[0].replaceChildren(el("tr", {}, el("td", { colspan: "7", text: "No report." })));
    }
    $("page-info").textContent = `Page ${page} of ${pages} (${body.count} reports)`;
    $("prev-page").disabled = page <= 1;
    $("next-page").disabled = page >= pages;
    if (body.results.some((r) => r.status === "Running")) reportTimer = setTimeout(refreshReports, POLL_MS);
  }

  function refreshReports() {
    loadReports().catch((err) => showError(err, "Loading the reports"));
  }

  function importResult(i) {
    if (i.status === "Failed") return i.error || "failed";
    if (i.status === "Running") {
      const p = i.progress || {};
      return `${i.phase || "running"}${p.file ? `: ${p.file}` : ""}${p.rows ? `, ${fmtNum(p.rows)} rows` : ""}`;
    }
    return i.summary ? summaryText(i.summary) : "done";
  }

  function importShort(i) {
    // The table's cell: the counts ops look at first (the full lines are shown after an upload).
    const sum = i.summary;
    if (i.status === "Complete" && sum && typeof sum.polls_inserted === "number") {
      const rejected = typeof sum.rejected === "number" ? `, ${fmtNum(sum.rejected)} rows rejected` : "";
      return `${fmtNum(sum.polls_inserted)} new polls${rejected}`;
    }
    return importResult(i);
  }

  function summaryText(summary) {
    // The import's summary: its own lines (as load_data prints them) and the first problems, else its counts.
    if (Array.isArray(summary.lines)) {
      const problems = (summary.problems || []).slice(0, 3).map((p) => `${p.file}:${p.line}: ${p.reason}`);
      return [...summary.lines, ...problems].join(" · ");
    }
    return Object.entries(summary)
      .filter(([, v]) => typeof v === "number" || typeof v === "string")
      .map(([k, v]) => `${k.replaceAll("_", " ")}: ${typeof v === "number" ? fmtNum(v) : v}`)
      .join(", ");
  }

  async function loadImports() {
    let body;
    try {
      body = await getJSON("/imports/?page=1&page_size=10");
    } catch (err) {
      if (err.status === 404) {
        $("imports-none").hidden = false;
        $("imports-none").textContent = "This server does not take imports over HTTP (no /imports/ endpoint).";
        $("imports-table").hidden = true;
        return;
      }
      throw err;
    }
    $("imports-none").hidden = body.results.length > 0;
    $("imports-none").textContent = "No import yet.";
    $("imports-table").tBodies[0].replaceChildren(
      ...body.results.map((i) =>
        el(
          "tr",
          { "data-import-id": i.import_id },
          el("th", { scope: "row" }, el("code", { text: `${String(i.import_id).slice(0, 8)}…`, title: i.import_id })),
          el("td", {}, el("span", { class: `status status-${String(i.status).toLowerCase()}`, text: i.status })),
          el("td", { text: fmtTime(i.created_at) }),
          el("td", { text: (i.files || []).map((f) => f.name).join(", ") }),
          el("td", { text: importShort(i) }),
        ),
      ),
    );
  }

  async function followImport(importId) {
    clearTimeout(importTimer);
    try {
      const i = await getJSON(`/imports/${encodeURIComponent(importId)}/`);
      $("import-state").textContent = `Import ${i.status}: ${importResult(i)}`;
      if (i.status === "Running") {
        importTimer = setTimeout(() => followImport(importId), POLL_MS);
      } else if (i.status === "Failed") {
        showError(new Error(i.error || "unknown error"), "The import failed");
      } else {
        showNotice("Import complete.");
        refreshReports();
      }
      await loadImports();
    } catch (err) {
      showError(err, "Following the import");
    }
  }

  $("import-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearMessages();
    const form = new FormData();
    const archive = $("import-archive").files[0];
    if (archive) form.append("archive", archive);
    else {
      for (const [id, name] of [["import-status", "store_status"], ["import-hours", "business_hours"], ["import-zones", "timezones"]]) {
        const file = $(id).files[0];
        if (file) form.append(name, file);
      }
    }
    if (![...form.keys()].length) {
      showError(new Error("Choose a .zip, or one or more CSV files, first."), "Upload");
      return;
    }
    const button = $("import-submit");
    button.disabled = true;
    $("import-progress-box").hidden = false;
    $("upload-progress").value = 0;
    $("import-state").textContent = "Uploading…";
    try {
      const { body } = await upload("/imports/", form, (share) => {
        $("upload-progress").value = Math.round(share * 100);
      });
      $("upload-progress").value = 100;
      $("import-state").textContent = `Uploaded; import ${body.import_id} ${body.status}.`;
      await followImport(body.import_id);
    } catch (err) {
      const missing = err.status === 404;
      showError(missing ? new Error("This server does not take imports over HTTP (no /imports/ endpoint).") : err, "Upload");
      $("import-state").textContent = "";
    } finally {
      button.disabled = false;
    }
  });

  $("status-filter").addEventListener("change", () => {
    page = 1;
    refreshReports();
  });
  $("prev-page").addEventListener("click", () => {
    page = Math.max(1, page - 1);
    refreshReports();
  });
  $("next-page").addEventListener("click", () => {
    page = Math.min(pages, page + 1);
    refreshReports();
  });

  Promise.all([loadReports(), loadImports()])
    .catch((err) => showError(err, "Loading the history"))
    .finally(ready);
})();
