/* Channels and maintenance windows: lists (GET /channels/, GET /maintenance/), create (POST), delete
 * (DELETE), a channel's test message (POST /channels/<id>/test/), and a channel's edit form and
 * enable/disable (PATCH /channels/<id>/). Every check is the API's: a refused form shows the API's 400
 * message. Channel changes are shown to admins, window changes to operators (GET /me/; the buttons carry
 * data-needs like the forms); the API refuses the others anyway. */
"use strict";

(function () {
  const { request, getJSON, postJSON, patchJSON, can, showError, showNotice, clearMessages, ready, fmtTime, el } = window.Loop;
  const $ = (id) => document.getElementById(id);
  const DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

  function button(text, label, onClick, cls, needs) {
    const b = el("button", { type: "button", class: cls || "secondary", text, "aria-label": label, "data-needs": needs });
    b.addEventListener("click", async () => {
      b.disabled = true;
      try {
        await onClick(b);
      } catch (err) {
        showError(err, label);
      } finally {
        b.disabled = false;
      }
    });
    return b;
  }

  async function remove(path, what) {
    if (!window.confirm(`Delete ${what}?`)) return;
    await request(path, { method: "DELETE" });
    showNotice(`Deleted ${what}.`);
    await load();
  }

  const channelPath = (c) => `/channels/${encodeURIComponent(c.channel_id)}/`;

  /* Channel c's edit form, in a row under its own. It sends only the fields that changed, so an
   * unchanged URL is not checked (resolved) again. */
  function channelEditRow(c) {
    const target = c.kind === "email" ? "email" : "url";
    const name = el("input", { name: "name", value: c.name, required: "", maxlength: "200" });
    const address = el("input", { name: target, value: c[target] || "", required: "", maxlength: target === "email" ? "254" : "2000" });
    const events = el("input", { name: "events", value: c.events.join(", "), size: "60" }); // all six fit
    const save = el("button", { type: "submit", text: "Save", "aria-label": `Save channel ${c.name}` });
    const cancel = el("button", { type: "button", class: "secondary", text: "Cancel", "aria-label": `Cancel editing ${c.name}` });
    const form = el(
      "form",
      { class: "edit-form channel-edit", "aria-label": `Edit channel ${c.name}` },
      el("label", {}, "Name ", name),
      el("label", {}, target === "email" ? "E-mail address " : "URL ", address),
      el("label", {}, "Events (comma-separated) ", events),
      save,
      cancel,
    );
    const row = el("tr", { class: "edit-row", "data-edit-channel-id": c.channel_id }, el("td", { colspan: "6" }, form));
    cancel.addEventListener("click", () => row.remove());
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearMessages();
      const changes = {};
      if (name.value.trim() !== c.name) changes.name = name.value.trim();
      if (address.value.trim() !== (c[target] || "")) changes[target] = address.value.trim();
      const wanted = list(events.value);
      if (wanted.join(",") !== c.events.join(",")) changes.events = wanted;
      if (!Object.keys(changes).length) {
        showNotice(`Nothing changed in channel ${c.name}.`);
        row.remove();
        return;
      }
      save.disabled = true;
      try {
        const { body: saved } = await patchJSON(channelPath(c), changes);
        showNotice(`Saved channel ${saved.name}.`);
        await load(); // redraws the table: the form goes with it
      } catch (err) {
        showError(err, `Editing channel ${c.name}`); // the form stays open with what was typed
      } finally {
        save.disabled = false;
      }
    });
    return row;
  }

  function toggleEdit(c, from) {
    const row = from.closest("tr");
    const open = row.nextElementSibling;
    if (open && open.dataset.editChannelId === c.channel_id) {
      open.remove();
      return;
    }
    const edit = channelEditRow(c);
    row.after(edit);
    edit.querySelector("input").focus();
  }

  async function setEnabled(c, enabled) {
    await patchJSON(channelPath(c), { enabled });
    showNotice(`${enabled ? "Enabled" : "Disabled"} channel ${c.name}.`);
    await load();
  }

  function renderChannels(body, mayChange) {
    $("channels-none").hidden = body.count > 0;
    $("channels-table").tBodies[0].replaceChildren(
      ...body.results.map((c) =>
        el(
          "tr",
          { "data-channel-id": c.channel_id },
          el("th", { scope: "row", text: c.name }),
          el("td", { text: c.kind }),
          el("td", { text: c.url || c.email || "–" }),
          el("td", { text: c.events.join(", ") }),
          el("td", { text: c.enabled ? "yes" : `no (${c.disabled_reason || "disabled"})` }),
          mayChange
            ? el(
                "td",
                {},
                button("Edit", `Edit channel ${c.name}`, (b) => toggleEdit(c, b), "secondary", "admin"),
                " ",
                c.enabled
                  ? button("Disable", `Disable channel ${c.name}`, () => setEnabled(c, false), "secondary", "admin")
                  : button("Enable", `Enable channel ${c.name}`, () => setEnabled(c, true), "secondary", "admin"),
                " ",
                button("Test", `Send a test message to ${c.name}`, async () => {
                  const { body: d } = await postJSON(`${channelPath(c)}test/`);
                  showNotice(`Test message to ${c.name} queued (delivery ${d.delivery_id}, ${d.status}).`);
                }, "secondary", "admin"),
                " ",
                button("Delete", `Delete channel ${c.name}`, () => remove(channelPath(c), `channel ${c.name}`), "danger", "admin"),
              )
            : el("td", { text: "–" }),
        ),
      ),
    );
  }

  function windowWhen(w) {
    if (w.kind === "weekly") return `every ${DAYS[w.weekday] || w.weekday} ${w.local_start}–${w.local_end} local`;
    return `${fmtTime(w.start)} to ${fmtTime(w.end)}`;
  }

  function renderWindows(body, mayChange) {
    $("windows-none").hidden = body.count > 0;
    $("windows-table").tBodies[0].replaceChildren(
      ...body.results.map((w) =>
        el(
          "tr",
          { "data-window-id": w.window_id },
          el("th", { scope: "row", text: w.all ? "all stores" : (w.store_ids || []).join(", ") }),
          el("td", { text: windowWhen(w) }),
          el("td", { text: w.note || "" }),
          mayChange
            ? el("td", {}, button("Delete", "Delete this window", () => remove(`/maintenance/${encodeURIComponent(w.window_id)}/`, "the window"), "danger", "operate"))
            : el("td", { text: "–" }),
        ),
      ),
    );
  }

  const list = (text) => text.split(",").map((part) => part.trim()).filter((part) => part);

  $("channel-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearMessages();
    const kind = $("channel-kind").value;
    const body = { name: $("channel-name").value.trim(), kind };
    body[kind === "email" ? "email" : "url"] = $("channel-target").value.trim();
    const events = list($("channel-events").value);
    if (events.length) body.events = events;
    try {
      const { body: made } = await postJSON("/channels/", body);
      $("channel-secret").hidden = !made.secret;
      $("channel-secret").textContent = made.secret ? `Signing secret of ${made.name} (shown once, keep it): ${made.secret}` : "";
      showNotice(`Added channel ${made.name}.`);
      $("channel-form").reset();
      await load();
    } catch (err) {
      showError(err, "Adding the channel");
    }
  });

  $("window-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearMessages();
    const stores = list($("window-stores").value);
    const body = stores.length ? { store_ids: stores } : { all: true };
    if ($("window-kind").value === "weekly") {
      body.weekday = Number($("window-weekday").value);
      body.local_start = $("window-local-start").value.trim();
      body.local_end = $("window-local-end").value.trim();
    } else {
      body.start = $("window-start").value.trim();
      body.end = $("window-end").value.trim();
    }
    const note = $("window-note").value.trim();
    if (note) body.note = note;
    try {
      await postJSON("/maintenance/", body);
      showNotice("Added the maintenance window.");
      $("window-form").reset();
      await load();
    } catch (err) {
      showError(err, "Adding the window");
    }
  });

  async function load() {
    const [channels, windows, mayChangeChannels, mayChangeWindows] = await Promise.all([
      getJSON("/channels/?page_size=100"),
      getJSON("/maintenance/?page_size=100"),
      can("admin"),
      can("operate"),
    ]);
    renderChannels(channels, mayChangeChannels);
    renderWindows(windows, mayChangeWindows);
  }

  load()
    .catch((err) => showError(err, "Loading channels and windows"))
    .finally(ready);
})();
