// 本村专区 inside the app: the village's public page (/v/<code>: trees, tonnes issued and
// sold, money paid to households), kept by the service worker so it opens with no signal.

import { call } from "./api.js";
import { h, heading, link } from "./dom.js";
import { t } from "./i18n.js";
import { app } from "./state.js";

/** The public page's content, taken from its HTML (our own server's, with no script). */
function contentOf(html) {
  const page = new DOMParser().parseFromString(html, "text/html");
  const content = page.querySelector(".public") ?? page.querySelector("main");
  content?.querySelectorAll("link, script, a[href^='/c/']").forEach((el) => el.remove());
  return content ? document.adoptNode(content) : null;
}

export async function screenBoard() {
  const url = `/v/${app.device.village_code}`;
  // Network first; the service worker answers from its copy offline.
  const { response, data } = await call("GET", url).catch(() => ({})); // no signal and no copy yet
  const content = data ? contentOf(new TextDecoder().decode(data)) : null;
  if (!content) {
    return h("section", {}, heading("board.title"),
      h("p", { class: "message", role: "alert", "data-tone": "warn" }, t("board.unavailable")),
      link("#/village", "common.back_village"));
  }
  const stamp = response.headers.get("Last-Modified");
  return h("section", { class: "board" },
    heading("board.title"),
    stamp ? h("p", { class: "meta", id: "board-updated" }, t("board.updated", { when: new Date(stamp).toLocaleString("zh-CN") })) : null,
    content,
    link("#/village", "common.back_village"));
}
