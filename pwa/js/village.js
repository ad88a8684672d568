// The measurer's village: its name, this season's progress, the households by door number
// and masked head name (search by part of a name, a number or the code), and opening a door
// plate or a tree tag by camera or by typing.

import { h, heading, link, say } from "./dom.js";
import { t } from "./i18n.js";
import { parseCode } from "./scan.js";
import {
  app, householdLabel, householdMatches, householdProblem, householdState, households,
  villageInfo, villageTrees,
} from "./state.js";
import { manualEntry, scanPanel } from "./widgets.js";

const STATE_BADGE = { measured: "done", todo: "waiting", flagged: "danger" };

/** Open what a scanned or typed code names: a household, or the tree a tag is bound to. */
export async function openCode(text, message) {
  const code = parseCode(text, app.device.village_code);
  navigator.vibrate?.(40);
  if (code.type === "household") {
    const { problem } = await householdProblem(code.value);
    if (problem) return say(message, `code.${problem}`, { code: code.value, village: code.village });
    location.hash = `#/household/${code.value}`;
  } else if (code.type === "tag") {
    if (!code.valid) return say(message, "code.tag_invalid", { code: code.value });
    if (code.village !== app.device.village_code) return say(message, "code.other_village", { code: code.value });
    const tree = (await villageTrees()).find((x) => x.tag === code.value);
    if (!tree) return say(message, "code.tag_unbound", { code: code.value });
    location.hash = `#/tree/${tree.id}/measure`;
  } else {
    say(message, code.type === "enrol" ? "code.enrol_here" : "code.unknown");
  }
}

function householdItem(row) {
  return h("li", { "data-code": row.code, "data-state": row.state },
    h("a", { href: `#/household/${row.code}`, class: "item" },
      h("strong", {}, householdLabel(row)),
      h("span", { class: `badge ${STATE_BADGE[row.state]}` }, t(`season.${row.state}`)),
      h("span", {}, t("village.tree_count", { count: row.trees })),
      h("span", { class: "code" }, row.code)));
}

/** The roster with this season's state of each household, sorted by number. */
async function roster() {
  const [rows, trees] = await Promise.all([households(), villageTrees()]);
  const byHousehold = new Map();
  for (const tree of trees) {
    if (!byHousehold.has(tree.household)) byHousehold.set(tree.household, []);
    byHousehold.get(tree.household).push(tree);
  }
  for (const row of rows) {
    const own = byHousehold.get(row.code) ?? [];
    Object.assign(row, { trees: own.length, state: householdState(own) });
  }
  return rows.sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
}

export async function screenVillage(ctx) {
  let [rows, village] = await Promise.all([roster(), villageInfo()]);
  const scan = scanPanel(ctx, openCode, "village.scan");
  const manual = manualEntry("household-code", "village.manual", "village.manual_placeholder", "village.open", openCode);
  const list = h("ul", { class: "list", id: "households" });
  const found = h("p", { class: "meta", id: "search-count", role: "status" });
  const search = h("input", {
    id: "household-search", type: "search", autocomplete: "off", placeholder: t("village.search_placeholder"),
  });
  const season = h("div", { class: "season", id: "season" });
  const show = () => {
    const matches = rows.filter((row) => householdMatches(row, search.value));
    list.replaceChildren(...matches.map(householdItem));
    found.textContent = search.value.trim() ? t("village.search_found", { count: matches.length }) : "";
    const measured = rows.filter((row) => row.state === "measured").length;
    const flagged = rows.filter((row) => row.state === "flagged").length;
    season.replaceChildren(
      h("label", { for: "season-progress" }, t("season.progress", { done: measured, total: rows.length, flagged })),
      h("progress", { id: "season-progress", max: rows.length, value: measured }));
    season.hidden = !rows.length;
  };
  search.addEventListener("input", show);
  show();
  // A sync round redraws the list in place: the search being typed and its focus stay.
  ctx.refresh = async () => {
    const fresh = await roster();
    if (fresh.length && !rows.length) return app.route(); // the roster just arrived
    rows = fresh;
    show();
  };
  return h("section", {},
    heading("village.title", { village: village.name ?? village.code ?? app.device.village_code }),
    village.name ? h("p", { class: "meta code" }, [village.township, village.code].filter(Boolean).join(" · ")) : null,
    season, scan.node, manual.node,
    h("div", { class: "row" },
      link("#/map", "village.map", {}, "button"),
      link("#/board", "village.board", {}, "button")),
    h("h2", {}, t("village.households", { count: rows.length })),
    rows.length
      ? h("div", {}, h("label", { for: "household-search" }, t("village.search")), search, found, list)
      : h("p", { class: "message", "data-tone": "info" }, t("village.empty")));
}
