// The upload screen: every record and its state, photo progress, storage, export.

import { h, heading, say } from "./dom.js";
import { errorText, number, t } from "./i18n.js";
import { exportOutbox, opsByState } from "./outbox.js";
import { pushPanel } from "./push-panel.js";
import { app, beijingTime, bytes, households, speciesName, storageUse, villageTrees } from "./state.js";

/** What a record is, in words: "王*三家 · 樟树 · 胸径 23.4 cm" (never its hex id). */
function recordName(op, trees, homes) {
  const tree = trees.get(op.record_id);
  const code = tree?.household ?? op.payload.household_code;
  const home = homes.get(code);
  const who = home?.head_name ? t("outbox.household_of", { name: home.head_name })
    : home ? t("household.number", { seq: String(home.seq).padStart(4, "0") }) : code ?? "";
  const species = op.payload.species_id ?? tree?.species_id;
  const stems = op.payload.stems_mm ?? (op.payload.dbh_mm ? [op.payload.dbh_mm] : null);
  const what = op.kind === "tree.measure" && stems ? t("tree.dbh", { cm: number(Math.max(...stems) / 10) })
    : op.kind === "tree.status" ? t(`status.${op.payload.status}`) : t(`kind.${op.kind}`);
  return [who, species ? speciesName(species) : null, what].filter(Boolean).join(" · ");
}

function opRow(op, names) {
  const photo = op.photo;
  const sent = photo ? (app.photoProgress.get(photo.sha256) ?? photo.offset ?? 0) : 0;
  return h("li", { class: `op ${op.state}`, "data-seq": op.device_seq },
    h("p", {}, h("strong", {}, names(op)), " ", h("span", { class: `badge ${op.state}` }, t(`state.${op.state}`))),
    h("p", { class: "meta" }, t(`kind.${op.kind}`), " · ", beijingTime(op.client_time)),
    op.state === "rejected" ? h("p", { class: "message", "data-tone": "error" }, t("outbox.reason", { reason: errorText(op.result) })) : null,
    op.state === "held" ? h("p", { class: "meta" }, t("outbox.held")) : null,
    photo?.state === "damaged" ? h("p", { class: "message", "data-tone": "error" }, t("outbox.photo_damaged"))
      : photo ? h("div", { class: "progress" },
        h("label", {}, photo.state === "done" ? t("outbox.photo_done") : t("outbox.photo_progress", { pct: Math.floor((100 * sent) / (photo.size || 1)) }),
          h("progress", { max: photo.size, value: photo.state === "done" ? photo.size : sent }))) : null);
}

export async function screenOutbox(ctx) {
  const [groups, treeList, homeList] = await Promise.all([opsByState(), villageTrees(), households()]);
  const trees = new Map(treeList.map((tree) => [tree.id, tree]));
  const homes = new Map(homeList.map((row) => [row.code, row]));
  const names = (op) => recordName(op, trees, homes);
  // One "waiting" count, as the banner's: held operations wait too, behind a missing one.
  const waiting = [...groups.pending, ...groups.held].sort((a, b) => a.device_seq - b.device_seq);
  const syncStatus = h("p", { class: "message", role: "status", id: "sync-status" });
  const lastError = app.scheduler?.snapshot().lastError; // why the banner says it did not go through
  if (lastError && navigator.onLine) {
    say(syncStatus, "outbox.last_error", { message: errorText(lastError) }, lastError.permanent ? "error" : "warn");
  }
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
        say(exportStatus, "outbox.export_failed", { message: errorText(error) });
      }
    },
  }, t("outbox.export"));
  ctx.refresh = () => app.route();
  ctx.progress = () => app.route();
  const section = (state, ops, limit = 100) => (ops.length ? h("section", {},
    h("h2", {}, t(`outbox.group_${state}`, { count: ops.length })),
    h("ul", { class: "ops", id: `ops-${state}` }, ops.slice(-limit).reverse().map((op) => opRow(op, names)))) : null);
  const total = Object.values(groups).reduce((n, ops) => n + ops.length, 0);
  const photos = [...waiting, ...groups.done.slice(-20)].filter((op) => op.photo?.thumbnail).reverse();
  const syncNow = () => {
    if (!navigator.onLine) return say(syncStatus, "outbox.no_signal", {}, "warn");
    say(syncStatus, "outbox.sync_started", {}, "info");
    app.scheduler.kick("manual");
    app.refreshBanner();
  };
  return h("section", {},
    heading("outbox.title"),
    h("div", { class: "row" },
      h("button", { type: "button", class: "big primary", id: "sync-now", onclick: syncNow }, t("outbox.sync_now")),
      exportButton),
    syncStatus, exportStatus, storage,
    total ? null : h("p", {}, t("outbox.empty")),
    section("rejected", groups.rejected), section("pending", waiting),
    photos.length ? h("section", {}, h("h2", {}, t("outbox.gallery", { count: photos.length })),
      h("ul", { class: "gallery", id: "gallery" }, photos.map((op) => h("li", {},
        h("figure", {}, h("img", { src: op.photo.thumbnail, alt: names(op) }), h("figcaption", {}, names(op))))))) : null,
    section("done", groups.done, 20),
    pushPanel({ explain: "push.explain_measurer", token: app.device?.token, kinds: ["record_flagged"] }));
}
