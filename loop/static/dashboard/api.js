/* The dashboard's shared client: calls the JSON API with the user's token, shows errors,
 * formats values and marks the page ready. Plain JS, no build step.
 *
 * Token: when the server sets API_TOKEN, a call answers 401; the page then hides its data, asks for
 * the token once (a dialog), keeps it in sessionStorage (this tab only) and retries. The page never
 * holds a token of its own.
 */
"use strict";

(function () {
  const TOKEN_KEY = "loop.apiToken";
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

  function updateForget() {
    forget.hidden = !token();
  }

  // Escape would close the prompt and leave an empty page: without the token there is nothing to show.
  dialog.addEventListener("cancel", (event) => event.preventDefault());

  forget.addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    location.reload();
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

  async function errorMessage(response) {
    try {
      const body = await response.json();
      if (body && typeof body.error === "string") return body.error;
    } catch (_) {
      /* not JSON: fall through */
    }
    return `The server answered ${response.status} ${response.statusText}.`;
  }

  /* fetch with the token; 401 asks for the token and tries again; other errors throw ApiError. */
  async function request(path, options = {}) {
    for (;;) {
      const headers = new Headers(options.headers || {});
      if (!headers.has("Accept")) headers.set("Accept", "application/json");
      if (token()) headers.set("Authorization", `Bearer ${token()}`);
      let response;
      try {
        response = await fetch(path, { ...options, headers });
      } catch (_) {
        throw new ApiError(0, "The server cannot be reached; check that it is running.");
      }
      if (response.status === 401) {
        const message = await errorMessage(response);
        const hadToken = Boolean(token());
        sessionStorage.removeItem(TOKEN_KEY);
        await askToken(hadToken ? `The token was refused (${message}) Enter it again.` : "This server needs its API token to show data.");
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

  async function getText(path, accept) {
    return (await request(path, { headers: { Accept: accept || "text/plain" } })).text();
  }

  /* Multipart upload with upload progress (fetch has none): XHR, same token and errors. */
  function upload(path, formData, onProgress) {
    return new Promise((resolve, reject) => {
      const send = () => {
        const xhr = new XMLHttpRequest();
        xhr.open("POST", path);
        xhr.setRequestHeader("Accept", "application/json");
        if (token()) xhr.setRequestHeader("Authorization", `Bearer ${token()}`);
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
            sessionStorage.removeItem(TOKEN_KEY);
            askToken("This server needs its API token.").then(send);
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

  /* The "ready" marker the browser tests and the benchmark wait for: ms since navigation start. */
  function ready() {
    if (document.body.dataset.ready) return;
    window.__readyMs = performance.now();
    document.body.dataset.ready = "1";
    main.setAttribute("aria-busy", "false");
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
    hasToken: () => Boolean(token()),
  };
})();
