/* The dashboard's shared client: calls the JSON API as the signed-in user or with the user's API key,
 * shows errors, formats values, hides the controls the caller may not use and marks the page ready.
 * Plain JS, no build step.
 *
 * Signed in (Django's session): the cookie goes with every call, and every unsafe call carries the
 * X-CSRFToken header from the csrftoken cookie. A 401 means the session is gone: back to the sign-in page.
 * API key (the sign-in page's key form, or this page's dialog): kept in sessionStorage (this tab only)
 * and sent as a Bearer token; a 401 hides the data, asks for the key once (a dialog) and retries. The page
 * never holds a key of its own.
 * Capabilities: GET /me/ says what the caller may do; an element with data-needs="<capability>" stays
 * hidden unless the caller has it (data-without: only when the caller lacks it), and pages ask
 * can("<capability>") before drawing a write button.
 */
"use strict";

(function () {
  const TOKEN_KEY = "loop.apiToken"; // login.js writes the same
  const KEY_COOKIE = "loop_key"; // "this browser uses a key" (loop.dashboard.KEY_MODE_COOKIE)
  const SAFE_METHODS = ["GET", "HEAD", "OPTIONS", "TRACE"];
  const authRequired = document.body.dataset.authRequired === "1";
  const main = document.getElementById("main");
  const messages = document.getElementById("messages");
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  const reason = document.getElementById("token-reason");
  const forget = document.getElementById("forget-token");
  let pendingToken = null; // one prompt shared by every call that met a 401

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function cookie(name) {
    const found = document.cookie.split(";").map((part) => part.trim()).find((part) => part.startsWith(`${name}=`));
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }

  /* A key in this tab, or the browser said it uses one (a new tab of a key user): the dialog, not the sign-in page. */
  function keyMode() {
    return Boolean(token()) || cookie(KEY_COOKIE) === "1";
  }

  function updateForget() {
    forget.hidden = !keyMode();
  }

  function signIn() {
    location.assign(`/accounts/login/?next=${encodeURIComponent(location.pathname + location.search)}`);
    return new Promise(() => {}); // the page is going away: nothing after this runs
  }

  // Escape would close the prompt and leave an empty page: without the token there is nothing to show.
  dialog.addEventListener("cancel", (event) => event.preventDefault());

  forget.addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    document.cookie = `${KEY_COOKIE}=; path=/; max-age=0; SameSite=Strict`;
    if (authRequired) signIn();
    else location.reload();
  });

  function askToken(message) {
    if (pendingToken) return pendingToken;
    main.hidden = true; // no data on screen without the right token
    reason.textContent = message;
    input.value = "";
    pendingToken = new Promise((resolve) => {
      form.addEventListener(
        "submit",
        (event) => {
          event.preventDefault();
          sessionStorage.setItem(TOKEN_KEY, input.value.trim());
          document.cookie = `${KEY_COOKIE}=1; path=/; SameSite=Strict`;
          dialog.close();
          main.hidden = false;
          pendingToken = null;
          updateForget();
          resolve();
        },
        { once: true },
      );
    });
    dialog.showModal();
    input.focus();
    return pendingToken;
  }

  /* A 401 for a key replaced since the call went out (and no prompt open) is not a refusal of the new key:
   * the call is sent again with it. */
  function keyReplacedSince(sentToken) {
    return token() !== sentToken && !pendingToken;
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      if (body && typeof body.error === "string") return body.error;
    } catch (_) {
      /* not JSON: fall through */
    }
    return `The server answered ${response.status} ${response.statusText}.`;
  }

  /* The headers every call carries: the key (if any) and, on a write, the session's CSRF token. */
  function authHeaders(headers, method) {
    if (token()) headers.set("Authorization", `Bearer ${token()}`);
    if (!SAFE_METHODS.includes(method.toUpperCase()) && cookie("csrftoken")) headers.set("X-CSRFToken", cookie("csrftoken"));
  }

  /* fetch as the session or with the key; 401 signs in again or asks for the key and tries again; other errors
   * throw ApiError. */
  async function request(path, options = {}) {
    for (;;) {
      const headers = new Headers(options.headers || {});
      if (!headers.has("Accept")) headers.set("Accept", "application/json");
      authHeaders(headers, options.method || "GET");
      const sentToken = token();
      let response;
      try {
        response = await fetch(path, { ...options, headers, credentials: "same-origin" });
      } catch (_) {
        throw new ApiError(0, "The server cannot be reached; check that it is running.");
      }
      if (response.status === 401) {
        if (authRequired && !keyMode()) return signIn();
        if (keyReplacedSince(sentToken)) continue;
        const message = await errorMessage(response);
        const hadToken = Boolean(token());
        sessionStorage.removeItem(TOKEN_KEY);
        await askToken(hadToken ? `The token was refused (${message}) Enter it again.` : "This server needs an API key to show data.");
        continue;
      }
      if (!response.ok) throw new ApiError(response.status, await errorMessage(response));
      return response;
    }
  }

  async function getJSON(path) {
    return (await request(path)).json();
  }

  async function postJSON(path, body) {
    const response = await request(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
    });
    return { status: response.status, body: await response.json() };
  }

  async function patchJSON(path, body) {
    const response = await request(path, {
      method: "PATCH",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
    });
    return { status: response.status, body: await response.json() };
  }

  async function getText(path, accept) {
    return (await request(path, { headers: { Accept: accept || "text/plain" } })).text();
  }

  /* Multipart upload with upload progress (fetch has none): XHR, same token and errors. */
  function upload(path, formData, onProgress) {
    return new Promise((resolve, reject) => {
      const send = () => {
        const xhr = new XMLHttpRequest();
        xhr.open("POST", path);
        xhr.withCredentials = true;
        const headers = new Headers({ Accept: "application/json" });
        authHeaders(headers, "POST");
        const sentToken = token();
        headers.forEach((value, name) => xhr.setRequestHeader(name, value));
        xhr.upload.addEventListener("progress", (e) => {
          if (e.lengthComputable) onProgress(e.loaded / e.total);
        });
        xhr.addEventListener("error", () => reject(new ApiError(0, "The upload failed: the server cannot be reached.")));
        xhr.addEventListener("load", () => {
          let body = null;
          try {
            body = JSON.parse(xhr.responseText);
          } catch (_) {
            /* keep null */
          }
          if (xhr.status === 401) {
            if (authRequired && !keyMode()) {
              signIn();
              return;
            }
            if (keyReplacedSince(sentToken)) {
              send();
              return;
            }
            sessionStorage.removeItem(TOKEN_KEY);
            askToken("This server needs an API key.").then(send);
            return;
          }
          if (xhr.status >= 400) {
            const message = body && body.error ? body.error : `The server answered ${xhr.status}.`;
            reject(new ApiError(xhr.status, message));
            return;
          }
          resolve({ status: xhr.status, body });
        });
        xhr.send(formData);
      };
      send();
    });
  }

  /* A CSV link: a plain link without a token; with one, fetched and saved (a link cannot send headers). */
  function downloadLink(anchor, path, filename) {
    anchor.href = path;
    anchor.setAttribute("download", filename);
    anchor.onclick = async (event) => {
      if (!token()) return;
      event.preventDefault();
      try {
        const blob = await (await request(path, { headers: { Accept: "text/csv, application/json;q=0.9" } })).blob();
        const url = URL.createObjectURL(blob);
        const a = document.createElement("a");
        a.href = url;
        a.download = filename;
        document.body.appendChild(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 10000);
      } catch (err) {
        showError(err);
      }
    };
  }

  function showError(err, context) {
    const text = err instanceof Error ? err.message : String(err);
    const p = document.createElement("p");
    p.className = "error";
    p.textContent = context ? `${context}: ${text}` : text;
    messages.replaceChildren(p);
  }

  function showNotice(text) {
    const p = document.createElement("p");
    p.className = "notice";
    p.textContent = text;
    messages.replaceChildren(p);
  }

  function clearMessages() {
    messages.replaceChildren();
  }

  // --- who is calling -------------------------------------------------------------------
  let mePromise = null;

  /* GET /me/ once per page: {name, kind, role, capabilities}; null when the server has no /me/ or it failed
   * (then every control shows and the API decides). A 401 signs in or asks for the key like any call. */
  function me() {
    if (!mePromise) mePromise = getJSON("/me/").catch(() => null);
    return mePromise;
  }

  async function can(capability) {
    const caller = await me();
    return !caller || caller.capabilities.includes(capability);
  }

  /* Show what the caller may use (data-needs), and who a key user is in the header. */
  const gate = me().then((caller) => {
    for (const node of document.querySelectorAll("[data-needs]")) {
      node.hidden = Boolean(caller) && !caller.capabilities.includes(node.dataset.needs);
    }
    for (const node of document.querySelectorAll("[data-without]")) {
      node.hidden = !caller || caller.capabilities.includes(node.dataset.without);
    }
    const who = document.getElementById("who-name");
    if (caller && who && (caller.kind === "key" || caller.kind === "token")) who.textContent = `Using ${caller.name}`;
  });

  /* The "ready" marker the browser tests and the benchmark wait for: ms since navigation start (after the
   * page's data is drawn and its controls are shown or hidden). */
  function ready() {
    gate.finally(() => {
      if (document.body.dataset.ready) return;
      window.__readyMs = performance.now();
      document.body.dataset.ready = "1";
      main.setAttribute("aria-busy", "false");
    });
  }

  // --- formatting -----------------------------------------------------------------------
  function fmtTime(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    return d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  function fmtLocal(iso) {
    // The wall-clock part of an ISO string with an offset: the store's own time.
    return iso ? iso.slice(0, 16).replace("T", " ") : "–";
  }

  function fmtNum(value, digits) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    return Number(value).toLocaleString("en-US", {
      minimumFractionDigits: digits || 0,
      maximumFractionDigits: digits || 0,
    });
  }

  /* Minutes as "1 h 18 min" (whole minutes, rounded down: a duration never reads longer than it is). */
  function fmtDuration(minutes) {
    if (minutes === null || minutes === undefined || Number.isNaN(minutes)) return "–";
    const whole = Math.floor(minutes);
    const h = Math.floor(whole / 60);
    const m = whole % 60;
    return h ? `${h} h ${m} min` : `${m} min`;
  }

  /* The clock part ("11:42") of a local ISO string with an offset. */
  function fmtClock(iso) {
    return iso ? iso.slice(11, 16) : "–";
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  /* Chart.js loads async (the page's data is asked for meanwhile): resolves once window.Chart exists. */
  function chartLibrary() {
    if (window.Chart) return Promise.resolve(window.Chart);
    const script = document.getElementById("chart-lib");
    return new Promise((resolve, reject) => {
      script.addEventListener("load", () => resolve(window.Chart));
      script.addEventListener("error", () => reject(new Error("The chart library could not be loaded.")));
    });
  }

  function storeHref(storeId) {
    return `/dashboard/stores/${encodeURIComponent(storeId)}/`;
  }

  updateForget();
  window.Loop = {
    ApiError,
    request,
    getJSON,
    postJSON,
    patchJSON,
    getText,
    upload,
    downloadLink,
    showError,
    showNotice,
    clearMessages,
    ready,
    fmtTime,
    fmtLocal,
    fmtNum,
    fmtDuration,
    fmtClock,
    el,
    storeHref,
    chartLibrary,
    me,
    can,
    hasToken: () => Boolean(token()),
  };
})();
