/* Who you are (GET /me/: name, how you signed in, role, capabilities) and your API keys (GET /keys/, listed
 * by prefix only; a server without keys answers 404 and the page says so). An admin's list is everyone's
 * keys: it gets an Owner column. */
"use strict";

(function () {
  const { getJSON, showError, ready, fmtTime, el } = window.Loop;
  const $ = (id) => document.getElementById(id);
  const KINDS = { user: "a username and password", key: "an API key", token: "the server's token", open: "nothing (this server asks nobody to sign in)" };
  const CAPABILITIES = {
    read: "read everything, see the dashboard, trigger reports",
    ingest: "send polls (POST /store_status/) and upload imports",
    operate: "acknowledge alerts; edit hours, zones, holidays and store names; manage maintenance windows",
    admin: "manage users, keys and alert channels; delete reports and imports; read the audit log",
  };

  function renderCaller(caller) {
    $("me-name").textContent = caller.name;
    $("me-kind").textContent = KINDS[caller.kind] || caller.kind;
    $("me-role").textContent = caller.role || "–";
    const items = caller.capabilities.map((c) => el("li", { "data-capability": c }, el("strong", { text: c }), `: ${CAPABILITIES[c] || ""}`));
    $("me-capabilities").replaceChildren(...(items.length ? items : [el("li", { text: "nothing yet: ask an admin for a role" })]));
    $("me-facts").setAttribute("aria-busy", "false");
  }

  function renderKeys(body, everyone) {
    const keys = Array.isArray(body) ? body : body.results || [];
    $("keys-title").textContent = everyone ? "API keys (everyone's: you are an admin)" : "Your API keys";
    $("keys-owner").hidden = !everyone;
    $("keys-none").hidden = keys.length > 0;
    $("keys-none").textContent = "No API key.";
    $("keys-table").hidden = keys.length === 0;
    $("keys-table").tBodies[0].replaceChildren(
      ...keys.map((k) =>
        el(
          "tr",
          { "data-key-id": k.key_id },
          el("th", { scope: "row", text: k.name || "–" }),
          ...(everyone ? [el("td", { class: "key-owner", text: k.owner })] : []),
          el("td", {}, el("code", { text: `${k.prefix}…` })),
          el("td", { text: k.scope }),
          el("td", { text: fmtTime(k.created_at) }),
          el("td", { text: k.expires_at ? fmtTime(k.expires_at) : "never" }),
          el("td", { text: k.last_used_at ? fmtTime(k.last_used_at) : "never" }),
        ),
      ),
    );
  }

  async function loadKeys(caller) {
    try {
      // GET /keys/ answers everyone's keys to a caller with the admin capability, else only the caller's.
      renderKeys(await getJSON("/keys/"), caller.capabilities.includes("admin"));
    } catch (err) {
      if (err.status !== 404 && err.status !== 403) throw err;
      $("keys-none").hidden = false;
      $("keys-none").textContent =
        err.status === 404 ? "This server has no API keys (GET /keys/ answered 404)." : `Keys are not listed for you: ${err.message}`;
    }
  }

  async function load() {
    const caller = await window.Loop.me();
    if (!caller) throw new Error("The server did not say who you are (GET /me/ failed).");
    renderCaller(caller);
    await loadKeys(caller);
  }

  load()
    .catch((err) => showError(err, "Loading who you are"))
    .finally(ready);
})();
