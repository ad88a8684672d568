// Forms on pages a shared cache keeps (the door plate, the bundle page) come without a CSRF
// token, the same page for every reader (server/form_tokens.py). When such a form is about to
// be used, fetch this browser's token (the session cookie comes with it) and fill it in, and
// give the form a fresh request id where it has one. Without this script the server hands the
// form back with a token and the second click goes through.
(function () {
  "use strict";
  // an old browser without these posts the form as it is and gets the second click
  if (typeof fetch !== "function" || !window.crypto || !crypto.getRandomValues) return;

  function randomId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function prepare(form) {
    const token = form.elements.namedItem("csrf_token");
    const requestId = form.elements.namedItem("request_id");
    let pending = null;

    function fetchToken() {
      if (!pending) {
        pending = fetch("/api/v1/auth/csrf", { credentials: "same-origin", cache: "no-store" })
          .then((answer) => (answer.ok ? answer.json() : Promise.reject(answer.status)))
          .then((body) => { token.value = body.csrf_token; })
          .catch((error) => { pending = null; throw error; });
      }
      return pending;
    }

    if (requestId && !requestId.value) requestId.value = randomId();
    // A farmer about to type: the token arrives while the digits are typed.
    form.addEventListener("focusin", () => { if (!token.value) fetchToken().catch(() => {}); });
    form.addEventListener("submit", (event) => {
      if (token.value) return;
      event.preventDefault();
      const send = () => HTMLFormElement.prototype.submit.call(form);
      fetchToken().then(send, send);  // offline or refused: the server answers the post
    });
  }

  document.querySelectorAll("form[data-form-token]").forEach(prepare);
})();
