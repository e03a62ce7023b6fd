/* The audit log (GET /audit/): newest first, filtered by actor and action (a family when it ends in "."),
 * paged by the API's cursor (Previous goes back through the cursors already seen). */
"use strict";

(function () {
  const { getJSON, showError, clearMessages, ready, fmtTime, el } = window.Loop;
  const $ = (id) => document.getElementById(id);
  const LIMIT = 50;
  let cursors = [null]; // cursors[i]: the cursor of page i + 1 (null: the newest entries)
  let next = null;

  function detailText(detail) {
    if (!detail || !Object.keys(detail).length) return "";
    return JSON.stringify(detail);
  }

  async function load() {
    const query = new URLSearchParams({ limit: String(LIMIT) });
    const actor = $("audit-actor").value.trim();
    const action = $("audit-action").value.trim();
    if (actor) query.set("actor", actor);
    if (action) query.set("action", action);
    const cursor = cursors[cursors.length - 1];
    if (cursor) query.set("cursor", cursor);
    const body = await getJSON(`/audit/?${query}`);
    clearMessages();
    next = body.next_cursor;
    const rows = body.results.map((e) =>
      el(
        "tr",
        { "data-entry-id": String(e.id) },
        el("td", { text: fmtTime(e.at), title: e.at }),
        el("th", { scope: "row", text: e.actor }),
        el("td", {}, el("code", { text: e.action })),
        el("td", { text: e.target }),
        el("td", { class: "wrap" }, el("code", { class: "audit-detail", text: detailText(e.detail) })),
        el("td", { text: e.address }),
        el("td", {}, el("code", { text: e.request_id })),
      ),
    );
    if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "7", text: "No entry." })));
    $("audit-table").tBodies[0].replaceChildren(...rows);
    $("page-info").textContent = `Page ${cursors.length}`;
    $("prev-page").disabled = cursors.length <= 1;
    $("next-page").disabled = !next;
  }

  function refresh() {
    return load().catch((err) => showError(err, "Loading the audit log"));
  }

  $("audit-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    cursors = [null];
    refresh();
  });
  $("prev-page").addEventListener("click", () => {
    if (cursors.length > 1) cursors.pop();
    refresh();
  });
  $("next-page").addEventListener("click", () => {
    if (!next) return;
    cursors.push(next);
    refresh();
  });

  refresh().finally(ready);
})();
