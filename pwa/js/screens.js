// The measurer's screens: enrol the phone, a household and its trees (the village: village.js).

import { h, heading, link, notice, say } from "./dom.js";
import { errorText, number, t } from "./i18n.js";
import { recordOperation } from "./outbox.js";
import { parseCode } from "./scan.js";
import {
  app, householdLabel, householdProblem, refreshMethod, speciesName, villageTrees,
} from "./state.js";
import { enrol, syncOnce } from "./sync.js";
import { photoPanel, scanPanel } from "./widgets.js";

export async function screenEnrol(ctx) {
  const label = h("input", { id: "label", type: "text", required: true, maxlength: "100", value: t("enrol.label_default") });
  const status = h("p", { class: "message", role: "status", id: "enrol-status" });
  const submit = h("button", { type: "submit", class: "big primary", id: "enrol" }, t("enrol.submit"));
  const code = h("input", {
    id: "code", type: "text", required: true, autocomplete: "off", autocapitalize: "characters",
    spellcheck: "false", placeholder: t("enrol.code_placeholder"),
  });
  const scan = scanPanel(ctx, (text, message) => {
    const found = parseCode(text);
    if (found.type !== "enrol") return say(message, "enrol.not_enrol_qr");
    code.value = found.value;
    scan.stop();
    say(message, "enrol.code_read", {}, "ok");
    label.focus();
  }, "enrol.scan");
  const form = h("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      const found = parseCode(code.value);
      if (found.type !== "enrol") return say(status, "enrol.bad_code");
      submit.disabled = true;
      say(status, "enrol.working", {}, "info");
      try {
        app.device = await enrol(found.value, label.value.trim() || t("enrol.label_default"));
      } catch (error) {
        submit.disabled = false;
        const key = error.code === "invalid_enrolment_code" ? "enrol.invalid"
          : error.code === "outbox_not_empty" ? "enrol.outbox_not_empty"
            : error.status ? "enrol.failed" : "enrol.offline";
        return say(status, key, { message: errorText(error) });
      }
      say(status, "enrol.pulling", {}, "info");
      await Promise.all([syncOnce().catch(() => null), refreshMethod({ force: true })]);
      app.refreshBanner();
      location.hash = "#/village";
    },
  },
  h("label", { for: "code" }, t("enrol.code")), code,
  h("label", { for: "label" }, t("enrol.label")), label, submit, status);
  return h("section", {},
    heading("enrol.title"),
    app.device ? h("p", { class: "message", "data-tone": "info" }, t("enrol.already", { village: app.device.village_code })) : null,
    h("p", {}, t("enrol.intro")), scan.node, form, link("#/verify", "enrol.verifier"));
}

function treeCard(tree) {
  const measured = tree.dbh_mm
    ? [t("tree.dbh", { cm: number(tree.dbh_mm / 10) }),
      tree.height_cm ? t("tree.height", { m: number(tree.height_cm / 100) }) : null,
      tree.co2e_g !== null && tree.co2e_g !== undefined ? t("tree.co2e", { kg: number(tree.co2e_g / 1000) }) : null]
      .filter(Boolean).join(" · ")
    : t("tree.unmeasured");
  const alive = (tree.status ?? "alive") === "alive";
  const confirm = h("div", { class: "confirm", hidden: true, role: "group" });
  const ask = (next) => {
    const id = `reason-${tree.id}`;
    const reason = h("select", { id }, REASONS[next].map((r) => h("option", { value: r }, t(`status.reason.${r}`))));
    const photo = photoPanel({ id: `status-photo-${tree.id}`, legend: "status.photo_legend" });
    const error = h("p", { class: "message", role: "alert" });
    const yes = h("button", {
      type: "button", class: "danger",
      onclick: async () => {
        yes.disabled = true;
        try {
          await markStatus(tree, next, reason.value, photo.photo());
        } catch (failure) {
          yes.disabled = false;
          say(error, failure.code === "photo_too_large" ? "form.photo_too_large"
            : failure.name === "QuotaExceededError" ? "form.quota" : "form.save_failed", { message: errorText(failure) });
        }
      },
    }, t(`status.yes_${next}`));
    confirm.replaceChildren(
      h("p", {}, t(`status.confirm_${next}`)),
      h("label", { for: id }, t("status.reason_label")), reason, photo.node, error,
      h("div", { class: "row" }, yes,
        h("button", { type: "button", onclick: () => { confirm.hidden = true; } }, t("common.cancel"))));
    confirm.hidden = false;
    confirm.querySelector("button").focus();
  };
  return h("li", { class: "card", "data-tree": tree.id },
    h("h3", {}, speciesName(tree.species_id)),
    h("p", { class: "meta" }, [t(`position.${tree.position}`), tree.tag ? t("tree.tag", { tag: tree.tag }) : null]
      .filter(Boolean).join(" · ")),
    h("p", { class: "measure" }, measured),
    h("p", { class: "badges" },
      alive ? null : h("span", { class: "badge danger" }, t(`status.${tree.status}`)),
      tree.unsynced ? h("span", { class: "badge waiting" }, t("tree.unsynced")) : null,
      tree.awaiting_photo ? h("span", { class: "badge waiting" }, t("tree.awaiting_photo")) : null),
    tree.open_flags?.length
      ? h("ul", { class: "flags" }, tree.open_flags.map((flag) => h("li", {}, t("tree.flag", { reason: errorText(flag) }))))
      : null,
    alive ? h("div", { class: "row actions" },
      link(`#/tree/${tree.id}/measure`, "tree.remeasure", {}, "button primary"),
      h("button", { type: "button", onclick: () => ask("dead") }, t("status.mark_dead")),
      h("button", { type: "button", onclick: () => ask("felled") }, t("status.mark_felled"))) : null,
    confirm);
}

// Why a tree is gone: kept with the operation in the server's op log (the audit trail).
const REASONS = {
  dead: ["pests", "drought", "storm", "other"],
  felled: ["building", "harvest", "fallen", "other"],
};

// The status, its reason and (optionally) a photo of the stump or the dead tree: one transaction.
async function markStatus(tree, next, reason, picture) {
  await recordOperation({
    kind: "tree.status", recordId: tree.id, payload: { status: next, reason }, baseVersion: tree.version ?? null,
    photo: picture?.blob ?? null, thumbnail: picture?.thumb ?? null,
  });
  app.scheduler.kick("save");
  app.refreshBanner();
  app.route();
}

export async function screenHousehold(ctx, text) {
  const { problem, code, household } = await householdProblem(decodeURIComponent(text));
  if (problem) {
    return notice(`code.${problem}`, { code: code.value, village: code.village },
      link("#/village", "common.back_village"));
  }
  const trees = (await villageTrees()).filter((tree) => tree.household === code.value);
  trees.sort((a, b) => (a.status === "alive" ? 0 : 1) - (b.status === "alive" ? 0 : 1) || (a.id < b.id ? -1 : 1));
  // A finished sync round redraws the trees, but never under an open question (dead or
  // felled?) with its reason and photo: the next round redraws instead.
  ctx.refresh = () => { if (!document.querySelector("#trees .confirm:not([hidden])")) app.route(); };
  return h("section", {},
    h("h1", { tabindex: "-1" }, householdLabel(household)),
    h("p", { class: "code" }, code.value),
    household.status && household.status !== "active" ? h("p", { class: "message" }, t("household.status", { status: household.status })) : null,
    link(`#/tree/new/${code.value}`, "household.add_tree", {}, "button big primary"),
    trees.length ? h("ul", { class: "cards", id: "trees" }, trees.map(treeCard)) : h("p", {}, t("household.no_trees")),
    link("#/village", "common.back_village"));
}

/** DBH/height/species checks shown while typing: the server flags the same for review. */
