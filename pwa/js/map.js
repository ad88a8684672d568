// The village map, offline: households and trees drawn from their own coordinates (no tile
// service), the phone's position, and the trees not yet measured this season, nearest first.

import { h, heading, link, say } from "./dom.js";
import { t } from "./i18n.js";
import { distanceM, drawMap, mapLegend, watchPosition, wayText } from "./geo.js";
import {
  householdLabel, households, measuredThisSeason, speciesName, villageInfo, villageTrees,
} from "./state.js";

const located = (p) => Number.isFinite(p?.latitude) && Number.isFinite(p?.longitude);

export async function screenMap(ctx) {
  const [trees, rows, village] = await Promise.all([villageTrees(), households(), villageInfo()]);
  const byCode = new Map(rows.map((row) => [row.code, row]));
  const standing = trees.filter((tree) => (tree.status ?? "alive") === "alive" && located(tree));
  const homes = new Map(); // a household drawn where its trees stand (their centre)
  for (const tree of standing) {
    const home = homes.get(tree.household) ?? { n: 0, latitude: 0, longitude: 0 };
    home.n += 1;
    home.latitude += tree.latitude;
    home.longitude += tree.longitude;
    homes.set(tree.household, home);
  }
  const todo = standing.filter((tree) => !measuredThisSeason(tree));
  const status = h("p", { class: "message", role: "status", id: "map-gps" });
  const holder = h("div", { class: "map-box" });
  const list = h("ol", { class: "cards", id: "map-todo" });
  let me = null;

  const draw = () => {
    const points = [
      ...[...homes].map(([code, home]) => ({
        latitude: home.latitude / home.n, longitude: home.longitude / home.n, kind: "house",
        label: householdLabel(byCode.get(code) ?? { code }),
      })),
      ...standing.map((tree) => ({
        latitude: tree.latitude, longitude: tree.longitude, kind: measuredThisSeason(tree) ? "done" : "todo",
        label: speciesName(tree.species_id),
      })),
      me ? { ...me, kind: "me", label: t("map.me") } : null,
    ].filter(Boolean);
    holder.replaceChildren(drawMap(points, { label: t("map.label", { village: village.name ?? village.code }) }));
    const ordered = me ? [...todo].sort((a, b) => distanceM(me, a) - distanceM(me, b)) : todo;
    list.replaceChildren(...ordered.slice(0, 50).map((tree) => h("li", { class: "card", "data-tree": tree.id },
      h("h3", {}, speciesName(tree.species_id)),
      h("p", { class: "meta" }, householdLabel(byCode.get(tree.household) ?? { code: tree.household })),
      me ? h("p", { class: "way" }, wayText(me, tree)) : null,
      link(`#/tree/${tree.id}/measure`, "tree.remeasure", {}, "button primary"))));
  };
  say(status, "gps.waiting", {}, "info");
  ctx.onLeave(watchPosition((fix) => {
    me = fix;
    say(status, "gps.fix", { lat: fix.latitude.toFixed(5), lon: fix.longitude.toFixed(5), m: Math.round(fix.accuracy) }, "ok");
    draw();
  }, (key) => say(status, key, {}, "warn")));
  draw();
  return h("section", {},
    heading("map.title"),
    standing.length ? null : h("p", { class: "message", "data-tone": "info" }, t("map.empty")),
    holder, mapLegend(["house", "todo", "done", "me"]), status,
    h("h2", {}, t("map.todo", { count: todo.length })), list,
    link("#/village", "common.back_village"));
}
