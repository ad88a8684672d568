// The upload screen: every record and its state, photo progress, storage, export.

import { h, heading, say } from "./dom.js";
import { language, t } from "./i18n.js";
import { exportOutbox, opsByState } from "./outbox.js";
import { pushPanel } from "./push-panel.js";
import { app, bytes, storageUse } from "./state.js";


function opRow(op) {
  const photo = op.photo;
  const sent = photo ? (app.photoProgress.get(photo.sha256) ?? photo.offset ?? 0) : 0;
  return h("li", { class: `op ${op.state}`, "data-seq": op.device_seq },
    h("p", {}, h("strong", {}, t(`kind.${op.kind}`)), " ", h("span", { class: "code" }, op.record_id.slice(0, 8)),
      " ", h("span", { class: `badge ${op.state}` }, t(`state.${op.state}`))),
    h("p", { class: "meta" }, new Date(op.client_time).toLocaleString(language() === "zh" ? "zh-CN" : "en")),
    op.state === "rejected" ? h("p", { class: "message", "data-tone": "error" }, t("outbox.reason", { reason: op.result?.reason ?? op.result?.code ?? "" })) : null,
    op.state === "held" ? h("p", { class: "meta" }, t("outbox.held")) : null,
    photo ? h("div", { class: "progress" },
      h("label", {}, photo.state === "done" ? t("outbox.photo_done") : t("outbox.photo_progress", { pct: Math.floor((100 * sent) / (photo.size || 1)) }),
        h("progress", { max: photo.size, value: photo.state === "done" ? photo.size : sent }))) : null);
}

export async function screenOutbox(ctx) {
  const groups = await opsByState();
  const storage = h("p", { class: "message", id: "storage", role: "status" });
  const exportStatus = h("p", { class: "message", role: "status" });
  storageUse().then(async (use) => {
    if (!use) return;
    const persisted = await navigator.storage.persisted?.().catch(() => false);
    storage.textContent = [t("outbox.storage", { used: bytes(use.usage), quota: bytes(use.quota), pct: Math.round(use.share * 100) }),
      use.nearlyFull ? t("outbox.storage_full") : null,
      persisted ? t("outbox.persisted") : t("outbox.not_persisted")].filter(Boolean).join(" ");
    storage.dataset.tone = use.nearlyFull ? "error" : "info";
  });
  const exportButton = h("button", {
    type: "button", class: "big", id: "export",
    onclick: async () => {
      say(exportStatus, "outbox.exporting", {}, "info");
      try {
        const blob = await exportOutbox();
        const stamp = new Date().toISOString().slice(0, 16).replace(/[-:T]/g, "");
        const a = h("a", { href: URL.createObjectURL(blob), download: `sipang-outbox-${stamp}.json` });
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(a.href), 60000);
        say(exportStatus, "outbox.exported", { size: bytes(blob.size) }, "ok");
      } catch (error) {
        say(exportStatus, "outbox.export_failed", { message: error.message });
      }
    },
  }, t("outbox.export"));
  ctx.refresh = () => app.route();
  ctx.progress = () => app.route();
  const section = (state, ops, limit = 100) => (ops.length ? h("section", {},
    h("h2", {}, t(`outbox.group_${state}`, { count: ops.length })),
    h("ul", { class: "ops" }, ops.slice(-limit).reverse().map(opRow))) : null);
  const total = Object.values(groups).reduce((n, ops) => n + ops.length, 0);
  return h("section", {},
    heading("outbox.title"),
    h("div", { class: "row" },
      h("button", { type: "button", class: "big primary", id: "sync-now", onclick: () => { app.scheduler.kick("manual"); app.refreshBanner(); } }, t("outbox.sync_now")),
      exportButton),
    exportStatus, storage,
    total ? null : h("p", {}, t("outbox.empty")),
    section("rejected", groups.rejected), section("held", groups.held), section("pending", groups.pending),
    section("done", groups.done, 20),
    pushPanel({ explain: "push.explain_measurer", token: app.device?.token, kinds: ["record_flagged"] }));
}
