// One sampled tree in the field: how to get there (distance and bearing from the phone, the
// compass arrow where the phone has one), then its outcome — re-measured blind (DBH and
// height, the species checked) or not found, dead or felled — queued on the phone.

import { h, heading, link, notice, say, uuidv7 } from "./dom.js";
import { t } from "./i18n.js";
import { arrow, bearingDeg, watchHeading, watchPosition, wayText } from "./geo.js";
import { getMeta, queueRemeasurement } from "./outbox.js";
import { kickSender, sampleOf, signIn } from "./verify.js";

const OUTCOMES = ["not_found", "dead", "felled"]; // 找不到 / 已死亡 / 已砍伐

async function save(sample, tree, body) {
  await queueRemeasurement({
    verification_id: sample.id, client_id: uuidv7(), tree_id: tree.tree_id,
    measured_at: new Date().toISOString(), ...body,
  });
  kickSender();
  location.hash = `#/verify/${sample.id}`;
}

function findPanel(ctx, tree) {
  const way = h("p", { class: "way", id: "tree-way", role: "status" });
  const pointer = h("div", { class: "pointer", id: "tree-arrow" });
  if (!Number.isFinite(tree.latitude)) {
    say(way, "verify.no_position", {}, "warn");
    return h("section", { class: "find" }, h("h2", {}, t("verify.find")), way);
  }
  let me = null;
  let heading = null;
  const show = () => {
    if (!me) return;
    way.textContent = wayText(me, tree);
    way.dataset.tone = me.accuracy > 20 ? "warn" : "ok";
    pointer.replaceChildren(arrow(bearingDeg(me, tree), heading),
      h("span", { class: "meta" }, t(heading === null ? "verify.north_up" : "verify.compass_on")));
  };
  say(way, "gps.waiting", {}, "info");
  ctx.onLeave(watchPosition((fix) => { me = fix; show(); }, (key) => say(way, key, {}, "warn")));
  ctx.onLeave(watchHeading((degrees) => { heading = degrees; show(); }));
  return h("section", { class: "find" }, h("h2", {}, t("verify.find")), way, pointer);
}

export async function screenRemeasure(ctx, id, treeId, { species }) {
  const account = await getMeta("verifier");
  if (!account) return signIn();
  const sample = await sampleOf(id);
  const tree = sample?.trees.find((x) => x.tree_id === treeId);
  if (!tree) return notice("verify.unknown_tree", {}, link("#/verify", "verify.back"));
  const select = h("select", { id: "verify-species" }, (species ?? []).map((s) => h("option", { value: s.id, selected: s.id === tree.species_id }, s.name_zh)));
  if (!species?.some((s) => s.id === tree.species_id)) select.append(h("option", { value: tree.species_id, selected: true }, tree.species_name));
  const dbh = h("input", { id: "verify-dbh", type: "number", inputmode: "decimal", step: "any", min: "0.1", max: "500", required: true, "aria-describedby": "verify-error" });
  const height = h("input", { id: "verify-height", type: "number", inputmode: "decimal", step: "any", min: "1.3", max: "100", required: true, "aria-describedby": "verify-error" });
  const error = h("p", { class: "message", role: "alert", id: "verify-error" });
  const form = h("form", {
    novalidate: true,
    onsubmit: async (event) => {
      event.preventDefault();
      const cm = Number(dbh.value);
      const m = Number(height.value);
      if (!(cm >= 0.1 && cm <= 500)) return say(error, "error.dbh_range"), dbh.focus();
      if (height.value.trim() === "" || !(m >= 1.3 && m <= 100)) return say(error, "verify.height_range"), height.focus();
      await save(sample, tree, {
        outcome: "measured", dbh_cm: Math.round(cm * 10) / 10, height_m: Math.round(m * 10) / 10, species_id: select.value,
      });
    },
  },
  h("label", { for: "verify-species" }, t("verify.species")), select,
  h("label", { for: "verify-dbh" }, t("form.dbh")), dbh,
  h("label", { for: "verify-height" }, t("verify.height")), height, error,
  h("button", { type: "submit", class: "big primary", id: "verify-save" }, t("verify.save")));

  const confirm = h("div", { class: "confirm", hidden: true, role: "group", id: "outcome-confirm" });
  const ask = (outcome) => {
    confirm.replaceChildren(
      h("p", {}, t(`verify.confirm.${outcome}`)),
      h("div", { class: "row" },
        h("button", { type: "button", class: "danger", id: "outcome-yes", onclick: () => save(sample, tree, { outcome }) }, t(`verify.yes.${outcome}`)),
        h("button", { type: "button", onclick: () => { confirm.hidden = true; } }, t("common.cancel"))));
    confirm.hidden = false;
    confirm.querySelector("button").focus();
  };
  return h("section", {},
    heading("verify.remeasure_title"),
    h("p", { class: "lead" }, tree.species_name, " · ", t(`position.${tree.position}`)),
    h("p", { class: "code" }, tree.household_code, tree.tag ? ` · ${tree.tag}` : ""),
    findPanel(ctx, tree),
    h("h2", {}, t("verify.measure_here")),
    h("p", { class: "meta" }, t("verify.blind")),
    form,
    h("h2", {}, t("verify.cannot_measure")),
    h("div", { class: "row actions", id: "outcomes" }, OUTCOMES.map((outcome) => h("button", {
      type: "button", "data-outcome": outcome, onclick: () => ask(outcome),
    }, t(`verify.outcome.${outcome}`)))),
    confirm,
    link(`#/verify/${sample.id}`, "verify.back_sample"));
}
