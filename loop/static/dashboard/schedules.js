/* Report schedules: the list (GET /schedules/) with each one's last deliveries (GET /deliveries/?schedule=),
 * a form to add one (POST /schedules/: name, cron, zone, format, channels, optional region and brand) and Run now
 * (POST /schedules/<id>/run/), after which the row follows the run until its delivery is stored and sent.
 * Every check is the API's: a refused form shows its 400 message. Adding and running are shown to callers with
 * the operate capability (GET /me/: data-needs); the API refuses the others anyway. */
"use strict";

(function () {
  const { getJSON, postJSON, can, showError, showNotice, clearMessages, ready, fmtTime, el } = window.Loop;
  const $ = (id) => document.getElementById(id);
  const DELIVERIES_SHOWN = 3;
  const FOLLOW_MS = 1000;
  const FOLLOW_FOR_MS = 90000;
  const FINAL = ["delivered", "failed"];
  let channelNames = new Map();

  const deliveriesPath = (s) => `/deliveries/?schedule=${encodeURIComponent(s.schedule_id)}&page_size=${DELIVERIES_SHOWN}`;

  function deliveryItem(d) {
    const data = (d.event && d.event.data) || {};
    const channel = channelNames.get(d.channel_id) || d.channel_id;
    const rows = data.rows === undefined ? "" : `, ${data.rows} store(s)`;
    const error = d.last_error ? ` (${d.last_error})` : "";
    return el("li", {
      "data-delivery-id": d.delivery_id,
      "data-status": d.status,
      "data-run-id": data.run_id || "",
      text: `${d.status}: ${d.event_type}${rows} to ${channel}, ${fmtTime(d.created_at)}${error}`,
    });
  }

  function renderDeliveries(cell, page) {
    cell.replaceChildren(
      page.results.length ? el("ul", { class: "deliveries" }, ...page.results.map(deliveryItem)) : el("span", { text: "none yet" }),
    );
  }

  /* After Run now: the row's deliveries again every second until the run's are all sent (or failed). */
  async function follow(s, runId, cell) {
    const until = Date.now() + FOLLOW_FOR_MS;
    while (Date.now() < until) {
      const page = await getJSON(deliveriesPath(s));
      renderDeliveries(cell, page);
      const mine = page.results.filter((d) => d.event && d.event.data && d.event.data.run_id === runId);
      if (mine.length && mine.every((d) => FINAL.includes(d.status))) return mine;
      await new Promise((resolve) => setTimeout(resolve, FOLLOW_MS));
    }
    return [];
  }

  function runButton(s, cell) {
    const b = el("button", { type: "button", class: "secondary", text: "Run now", "aria-label": `Run ${s.name} now`, "data-needs": "operate" });
    b.addEventListener("click", async () => {
      b.disabled = true;
      clearMessages();
      try {
        const { status, body: run } = await postJSON(`/schedules/${encodeURIComponent(s.schedule_id)}/run/`);
        const again = status === 200 ? " (this minute's run, already started)" : "";
        const note = run.data_note ? `; ${run.data_note}` : "";
        showNotice(`Run of ${s.name} started${again}: report ${run.report_id || "–"}, ${run.state}${note}.`);
        const sent = await follow(s, run.run_id, cell);
        if (sent.length) showNotice(`Run of ${s.name}: ${sent.map((d) => `${d.status} to ${channelNames.get(d.channel_id) || d.channel_id}`).join(", ")}.`);
      } catch (err) {
        showError(err, `Running ${s.name}`);
      } finally {
        b.disabled = false;
      }
    });
    return b;
  }

  function when(s) {
    return `${s.cron} (${s.timezone})${s.enabled ? "" : ", paused"}`;
  }

  function stores(s) {
    const parts = [s.region && `region ${s.region}`, s.brand && `brand ${s.brand}`].filter((p) => p);
    return parts.length ? parts.join(", ") : "all";
  }

  async function renderSchedules(body, mayRun) {
    $("schedules-none").hidden = body.count > 0;
    const pages = await Promise.all(body.results.map((s) => getJSON(deliveriesPath(s))));
    $("schedules-table").tBodies[0].replaceChildren(
      ...body.results.map((s, i) => {
        const cell = el("td", { class: "wrap" });
        renderDeliveries(cell, pages[i]);
        return el(
          "tr",
          { "data-schedule-id": s.schedule_id },
          el("th", { scope: "row", text: s.name }),
          el("td", { text: when(s) }),
          el("td", { text: s.format }),
          el("td", { text: stores(s) }),
          el("td", { text: s.channels.map((c) => channelNames.get(c) || c).join(", ") }),
          el("td", { text: s.next_run_at ? fmtTime(s.next_run_at) : "–" }),
          cell,
          mayRun ? el("td", {}, runButton(s, cell)) : el("td", { text: "–" }),
        );
      }),
    );
  }

  function renderChannelChoices(channels) {
    const select = $("schedule-channels");
    const chosen = new Set([...select.selectedOptions].map((o) => o.value));
    select.replaceChildren(
      ...channels.results.map((c) => {
        const option = el("option", { value: c.channel_id, text: `${c.name} (${c.kind})` });
        option.selected = chosen.has(c.channel_id);
        return option;
      }),
    );
  }

  $("schedule-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearMessages();
    const body = {
      name: $("schedule-name").value.trim(),
      cron: $("schedule-cron").value.trim(),
      timezone: $("schedule-timezone").value.trim(),
      format: $("schedule-format").value,
      channels: [...$("schedule-channels").selectedOptions].map((o) => o.value),
    };
    for (const field of ["region", "brand"]) {
      const value = $(`schedule-${field}`).value.trim();
      if (value) body[field] = value;
    }
    try {
      const { body: made } = await postJSON("/schedules/", body);
      showNotice(`Added schedule ${made.name}: next run ${made.next_run_at ? fmtTime(made.next_run_at) : "–"}.`);
      $("schedule-form").reset();
      await load();
    } catch (err) {
      showError(err, "Adding the schedule"); // the form keeps what was typed
    }
  });

  async function load() {
    const [schedules, channels, mayRun] = await Promise.all([
      getJSON("/schedules/?page_size=100"),
      getJSON("/channels/?page_size=100"),
      can("operate"),
    ]);
    channelNames = new Map(channels.results.map((c) => [c.channel_id, c.name]));
    renderChannelChoices(channels);
    $("schedule-no-channels").hidden = !mayRun || channels.count > 0;
    await renderSchedules(schedules, mayRun);
  }

  load()
    .catch((err) => showError(err, "Loading the schedules"))
    .finally(ready);
})();
