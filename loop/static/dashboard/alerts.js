/* Down now: open alerts longest down first (GET /alerts/?order=longest) with an Ack button per row for
 * callers who may operate (POST /alerts/<id>/ack/), and alerts resolved in the last 24 hours of the data
 * clock (GET /alerts/?state=resolved&resolved_within_hours=24). Refreshes itself every 30 s. */
"use strict";

(function () {
  const { getJSON, postJSON, can, showError, showNotice, ready, fmtTime, fmtLocal, fmtDuration, el, storeHref } = window.Loop;
  const $ = (id) => document.getElementById(id);
  const REFRESH_MS = 30000;
  const LIMIT = 100; // the API's largest page; more open alerts are counted in a note
  const BY_KEY = "loop.ackBy";
  let timer = null;

  $("ack-by").value = localStorage.getItem(BY_KEY) || "";
  // Signed in: acknowledge as yourself unless this browser kept another name.
  window.Loop.me().then((caller) => {
    if (caller && caller.kind === "user" && !$("ack-by").value) $("ack-by").value = caller.name;
  });
  $("ack-by").addEventListener("change", () => localStorage.setItem(BY_KEY, $("ack-by").value.trim()));

  function storeCell(a) {
    const link = el("a", { href: storeHref(a.store_id), text: a.name || a.store_id });
    const id = a.name ? [el("br", {}), el("code", { class: "hint", text: a.store_id })] : [];
    return el("th", { scope: "row" }, link, ...id);
  }

  function ackCell(a, mayAck) {
    if (a.acknowledged_by) return el("td", { class: "acked", text: `${a.acknowledged_by}, ${fmtTime(a.acknowledged_at)}` });
    if (!mayAck) return el("td", { class: "acked", text: "–" });
    const button = el("button", { type: "button", class: "ack", text: "Ack", "aria-label": `Acknowledge the alert of ${a.name || a.store_id}` });
    button.addEventListener("click", () => acknowledge(a, button));
    return el("td", { class: "acked" }, button);
  }

  async function acknowledge(a, button) {
    button.disabled = true;
    const by = $("ack-by").value.trim() || "dashboard";
    try {
      await postJSON(`/alerts/${encodeURIComponent(a.alert_id)}/ack/`, { by });
      showNotice(`Acknowledged ${a.name || a.store_id} as ${by}.`);
      await load();
    } catch (err) {
      button.disabled = false;
      showError(err, "Acknowledging");
    }
  }

  function renderOpen(body, mayAck) {
    const rows = body.results.map((a) =>
      el(
        "tr",
        { "data-alert-id": a.alert_id, "data-store-id": a.store_id },
        storeCell(a),
        el("td", { text: a.region || "–" }),
        el("td", { text: a.started_at_local ? `${fmtLocal(a.started_at_local)} (${a.zone})` : "–" }),
        el("td", { text: fmtTime(a.started_at) }),
        el("td", { class: "num", text: fmtDuration(a.down_minutes) }),
        ackCell(a, mayAck),
      ),
    );
    $("open-table").tBodies[0].replaceChildren(...rows);
    $("open-none").hidden = body.count > 0;
    $("open-table").hidden = body.count === 0;
    $("open-more").hidden = body.count <= body.results.length;
    $("open-more").textContent = `Showing the ${body.results.length} longest of ${body.count} open alerts.`;
    $("open-title").textContent = `Open alerts, longest down first (${body.open}, ${body.open_unacknowledged} not acknowledged)`;
  }

  function renderResolved(body) {
    const rows = body.results.map((a) =>
      el(
        "tr",
        { "data-alert-id": a.alert_id },
        storeCell(a),
        el("td", { text: a.region || "–" }),
        el("td", { text: a.started_at_local ? fmtLocal(a.started_at_local) : fmtTime(a.started_at) }),
        el("td", { text: fmtTime(a.resolved_at) }),
        el("td", { class: "num", text: fmtDuration(a.down_minutes) }),
        el("td", { text: a.resolution === "closed" ? "store closed" : "back up" }),
        el("td", { text: a.acknowledged_by || "–" }),
      ),
    );
    $("resolved-table").tBodies[0].replaceChildren(...rows);
    $("resolved-none").hidden = body.count > 0;
    $("resolved-table").hidden = body.count === 0;
  }

  async function load() {
    clearTimeout(timer);
    try {
      const [open, resolved, mayAck] = await Promise.all([
        getJSON(`/alerts/?state=open&order=longest&page_size=${LIMIT}`),
        getJSON(`/alerts/?state=resolved&resolved_within_hours=24&page_size=${LIMIT}`),
        can("operate"),
      ]);
      renderOpen(open, mayAck);
      renderResolved(resolved);
      $("alerts-caption").textContent = open.evaluated_at
        ? `Evaluated at ${fmtTime(open.evaluated_at)} (the newest poll). Refreshes every 30 s.`
        : "No evaluation yet: no polls stored.";
    } finally {
      timer = setTimeout(() => load().catch((err) => showError(err, "Refreshing the alerts")), REFRESH_MS);
    }
  }

  load()
    .catch((err) => showError(err, "Loading the alerts"))
    .finally(ready);
})();
