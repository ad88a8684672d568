// Registering a tree or re-measuring one: species, position, DBH (with extra stems), height,
// GPS, photo, the live estimate and warnings; saved to the outbox in one transaction.

import { equivalentDbh, estimateTree, needsHeight } from "./carbon.js";
import { $, h, heading, link, notice, say, uuidv7 } from "./dom.js";
import { errorText, number, t } from "./i18n.js";
import { recordOperations } from "./outbox.js";
import { parseCode } from "./scan.js";
import { app, householdProblem, refreshMethod, speciesName, speciesOf, villageTrees } from "./state.js";
import { gpsPanel, photoPanel, plausibility, scanPanel, speciesPicker } from "./widgets.js";

const POSITIONS = ["house", "village", "road", "water"]; // 四旁: 宅旁 村旁 路旁 水旁

export async function screenTreeForm(ctx, { household, treeId }) {
  await refreshMethod();
  const trees = await villageTrees();
  const tree = treeId ? trees.find((x) => x.id === treeId) : null;
  if (treeId && !tree) return notice("tree.unknown", {}, link("#/village", "common.back_village"));
  const { problem, code } = await householdProblem(tree ? tree.household : decodeURIComponent(household));
  if (problem) return notice(`code.${problem}`, { code: code.value, village: code.village }, link("#/village", "common.back_village"));
  if (!app.method) return notice("method.missing", {}, link(`#/household/${code.value}`, "common.back_household"));

  const estimate = h("p", { class: "estimate", id: "estimate", "aria-live": "polite" });
  const warningList = h("ul", { class: "warnings", id: "warnings", "aria-live": "polite" });
  const formError = h("p", { class: "message", role: "alert", id: "form-error", tabindex: "-1" });
  const stems = h("div", { class: "stems" });
  const height = h("input", { id: "height", type: "number", inputmode: "decimal", step: "any", min: "0.3", max: "80" });
  const heightLabel = h("label", { for: "height" });
  const tag = h("input", { id: "tag", type: "text", autocapitalize: "characters", autocomplete: "off", placeholder: t("form.tag_placeholder") });
  let picker = null;
  const species = () => (tree ? speciesOf(tree.species_id) : speciesOf(picker?.select.value));

  const stemValues = () => [...stems.querySelectorAll("input")].map((input) => input.value.trim())
    .filter((value, index) => index === 0 || value !== "").map((value) => (value === "" ? NaN : Number(value)));
  const addStem = (first = false) => {
    const input = h("input", { type: "number", inputmode: "decimal", step: "any", min: "0.1", max: "300", id: first ? "dbh" : null, class: "stem" });
    input.addEventListener("input", update);
    const remove = first ? null : h("button", { type: "button", class: "small", "aria-label": t("form.stem_remove"), onclick: () => { row.remove(); update(); } }, "×");
    const row = h("div", { class: "row" }, input, remove);
    if (!first) input.setAttribute("aria-label", t("form.stem_extra"));
    stems.append(row);
    if (!first) input.focus();
  };

  function read() {
    const s = species();
    const values = stemValues().map((cm) => Math.round(cm * 10) / 10);
    const heightText = height.value.trim();
    return { s, values, heightM: heightText === "" ? null : Number(heightText) };
  }

  function update() {
    const { s, values, heightM } = read();
    warningList.replaceChildren();
    estimate.textContent = "";
    if (!s) return;
    heightLabel.textContent = t(needsHeight(s) ? "form.height_required" : "form.height_optional");
    if (s.route === "excluded") {
      estimate.textContent = s.excluded_reason;
      estimate.dataset.tone = "warn";
      return;
    }
    if (!values.length || !values.every((cm) => cm >= 0.1 && cm <= 300)) return;
    const dbh = values.length > 1 ? equivalentDbh(values) : values[0];
    if (heightM !== null && !(heightM >= 0.3 && heightM <= 80)) return say(estimate, "error.height_range", {}, "warn");
    if (heightM === null && needsHeight(s)) return say(estimate, "estimate.needs_height", { species: s.name_zh }, "info");
    const result = estimateTree(app.method, s.id, dbh, heightM);
    const lines = [t("estimate.value", { kg: number(result.co2e_g / 1000) })];
    if (values.length > 1) lines.push(t("estimate.equivalent", { cm: number(dbh) }));
    if (s.route === "generic") lines.push(t("estimate.generic", { pct: s.uncertainty_pct }));
    estimate.textContent = lines.join(" ");
    estimate.dataset.tone = "ok";
    warningList.replaceChildren(...plausibility(s, dbh, heightM, tree).map((w) => h("li", {}, w)));
  }

  function validate() {
    const { s, values, heightM } = read();
    if (!s) return ["species", "form.need_species"];
    if (s.route === "excluded") return ["species", "form.species_excluded_error", { reason: s.excluded_reason }];
    if (!tree && !$("input[name=position]:checked", form)) return ["position", "form.need_position"];
    if (!values.length || !values.every((cm) => cm >= 0.1 && cm <= 300)) return ["dbh", "error.dbh_range"];
    if (heightM !== null && !(heightM >= 0.3 && heightM <= 80)) return ["height", "error.height_range"];
    if (heightM === null && needsHeight(s)) return ["height", "estimate.needs_height", { species: s.name_zh }];
    if (!tree && tag.value.trim()) {
      const found = parseCode(tag.value, app.device.village_code);
      if (found.type !== "tag" || !found.valid) return ["tag", "code.tag_invalid", { code: tag.value.trim() }];
      if (found.village !== app.device.village_code) return ["tag", "code.other_village", { code: found.value }];
      if (trees.some((x) => x.tag === found.value)) return ["tag", "form.tag_taken", { code: found.value }];
    }
    return null;
  }

  const save = h("button", { type: "submit", class: "big primary", id: "save" }, t("form.save"));
  const gps = gpsPanel(ctx);
  const photo = photoPanel();
  const form = h("form", { novalidate: true, id: "tree-form" });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const invalid = validate();
    for (const p of form.querySelectorAll(".field-error")) say(p);
    if (invalid) {
      const [field, ...message] = invalid;
      say(fieldErrors[field], ...message);
      say(formError, "form.fix_marked");
      const input = { species: "#species", position: "input[name=position]", dbh: "#dbh", height: "#height", tag: "#tag" }[field];
      return ($(input, form) ?? formError).focus();
    }
    const { s, values, heightM } = read();
    save.disabled = true;
    say(formError, "form.saving", {}, "info");
    const fix = gps.fix();
    const picture = photo.photo();
    try {
      const id = tree?.id ?? uuidv7();
      const operations = [];
      if (!tree) { // a new tree: its registration and first measurement are saved together
        const payload = { household_code: code.value, species_id: s.id, position: $("input[name=position]:checked", form).value };
        if (tag.value.trim()) payload.tag = parseCode(tag.value, app.device.village_code).value;
        operations.push({ kind: "tree.register", recordId: id, payload, baseVersion: null });
      }
      const payload = { measurement_id: uuidv7(), stems_mm: values.map((cm) => Math.round(cm * 10)) };
      if (heightM !== null) payload.height_cm = Math.round(heightM * 100);
      if (fix) Object.assign(payload, { latitude: fix.latitude, longitude: fix.longitude, gps_accuracy_m: Math.round(fix.accuracy * 10) / 10 });
      operations.push({
        kind: "tree.measure", recordId: id, payload, baseVersion: tree ? tree.version ?? null : 1,
        photo: picture?.blob ?? null, thumbnail: picture?.thumb ?? null,
      });
      await recordOperations(operations);
      gps.stop();
      app.scheduler.kick("save");
      app.refreshBanner();
      const recap = [speciesName(s.id), t("tree.dbh", { cm: number(values.length > 1 ? equivalentDbh(values) : values[0]) }),
        heightM !== null ? t("tree.height", { m: number(heightM) }) : null,
        !tree && tag.value.trim() ? t("tree.tag", { tag: parseCode(tag.value, app.device.village_code).value }) : null,
        fix ? t("form.recap_gps", { m: Math.round(fix.accuracy) }) : t("form.recap_no_gps"),
        picture ? t("form.recap_photo") : t("form.recap_no_photo")].filter(Boolean).join(" · ");
      form.replaceWith(h("section", { class: "saved", id: "saved" },
        h("p", { role: "status", class: "message", "data-tone": "ok", tabindex: "-1" }, t("form.saved")),
        h("p", { class: "recap", id: "recap" }, recap),
        tree ? null : h("button", { type: "button", class: "big primary", onclick: () => app.route() }, t("form.another"))));
      back.textContent = t("common.back_household");
      back.classList.add("big");
      $("#saved p").focus();
    } catch (error) {
      save.disabled = false;
      const key = error.code === "photo_too_large" ? "form.photo_too_large"
        : error.name === "QuotaExceededError" ? "form.quota" : "form.save_failed";
      say(formError, key, { message: errorText(error) });
      formError.focus();
    }
  });

  if (!tree) picker = speciesPicker(update);
  addStem(true);
  const fieldErrors = Object.fromEntries(["species", "position", "dbh", "height", "tag"].map((name) => [name,
    h("p", { class: "message field-error", role: "alert", id: `${name}-error` })]));
  const tagScan = tree ? null : scanPanel(ctx, (text, message) => {
    const found = parseCode(text, app.device.village_code);
    if (found.type !== "tag") return say(message, "form.tag_scan_not_tag");
    tag.value = found.value;
    tagScan.stop();
    say(message, "form.tag_read", { tag: found.value }, "ok");
  }, "form.tag_scan", { id: "tag-scan", cls: "small" });
  form.append(...[
    tree ? h("p", { class: "lead" }, speciesName(tree.species_id), " · ", t(`position.${tree.position}`)) : picker.node,
    tree ? null : fieldErrors.species,
    tree ? null : h("fieldset", { class: "positions" }, h("legend", {}, t("form.position")),
      POSITIONS.map((p) => h("label", { class: "tile" }, h("input", { type: "radio", name: "position", value: p, required: true }), t(`position.${p}`)))),
    tree ? null : fieldErrors.position,
    tree?.dbh_mm ? h("p", { class: "meta" }, t("form.previous", {
      cm: number(tree.dbh_mm / 10), m: tree.height_cm ? number(tree.height_cm / 100) : "—",
    })) : null,
    h("div", { class: "field" }, h("label", { for: "dbh" }, t("form.dbh")), stems, fieldErrors.dbh,
      h("button", { type: "button", class: "small", onclick: () => addStem() }, t("form.stem_add"))),
    h("div", { class: "field" }, heightLabel, height, fieldErrors.height),
    tree ? null : h("div", { class: "field" }, h("label", { for: "tag" }, t("form.tag")), tag, fieldErrors.tag, tagScan.node),
    gps.node, photo.node,
    h("section", { class: "result", "aria-label": t("estimate.title") }, h("h2", {}, t("estimate.title")), estimate, warningList),
    formError, save].filter(Boolean));
  height.addEventListener("input", update);
  update();
  heightLabel.textContent ||= t("form.height_optional");
  const back = link(`#/household/${code.value}`, "common.back_household");
  back.id = "back-household";
  return h("section", {},
    heading(tree ? "form.title_measure" : "form.title_new"),
    h("p", { class: "code" }, t("form.household", { code: code.value })),
    form, back);
}
