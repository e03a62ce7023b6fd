/* The sign-in page's "use an API key" form: keeps the key in this tab (as api.js reads it), marks the
 * browser as using a key (the loop_key cookie: the pages are then served without signing in; the API
 * checks the key) and goes on to the page that sent the visitor here. The password form needs no script. */
"use strict";

(function () {
  const TOKEN_KEY = "loop.apiToken"; // api.js's name
  const form = document.getElementById("key-form");
  const input = document.getElementById("key-input");

  /* Only a path of this site: never "//host" or "/\host" (a page elsewhere). */
  function safeNext(next) {
    return next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "/";
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    sessionStorage.setItem(TOKEN_KEY, key);
    document.cookie = "loop_key=1; path=/; SameSite=Strict";
    location.assign(safeNext(form.dataset.next));
  });
})();
