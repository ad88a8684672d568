// The "notifications" box on the upload and verifier screens: what they are for, a button
// (permission is asked only when it is tapped), and what happened, "denied" included.

import { h, say } from "./dom.js";
import { errorText, t } from "./i18n.js";
import { enablePush, pushPermission } from "./push.js";

const MESSAGES = {
  subscribed: ["push.enabled", "ok"],
  unsupported: ["push.unsupported", "warn"],
  denied: ["push.denied", "error"],
  dismissed: ["push.dismissed", "warn"],
  failed: ["push.failed", "error"],
};

/** `explain`: the message key saying what will be notified; `token`: the bearer token. */
export function pushPanel({ explain, token, kinds }) {
  const status = h("p", { class: "message", role: "status", id: "push-status" });
  const permission = pushPermission();
  if (permission === "denied" || permission === "unsupported") say(status, MESSAGES[permission][0], {}, MESSAGES[permission][1]);
  const button = h("button", {
    type: "button", class: "big", id: "push-enable", disabled: permission === "unsupported",
    onclick: async () => {
      button.disabled = true;
      say(status, "push.enabling", {}, "info");
      const result = await enablePush({ token, kinds });
      const [key, tone] = MESSAGES[result.state];
      say(status, key, { message: result.error ? errorText(result.error) : "" }, tone);
      button.disabled = result.state === "subscribed" || result.state === "unsupported";
    },
  }, t("push.enable"));
  return h("section", { class: "push", "aria-labelledby": "push-title" },
    h("h2", { id: "push-title" }, t("push.title")), h("p", {}, t(explain)), button, status);
}
