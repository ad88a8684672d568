// What the screens share: the enrolled phone, the methodology and the scheduler, and the
// village as this phone knows it (the pulled rows with its own unsent operations laid over).

import { callJson } from "./api.js";
import { equivalentDbh, estimateTree } from "./carbon.js";
import { language, number, t } from "./i18n.js";
import { withStore } from "./idb.js";
import { getMeta, pendingOps, setMeta } from "./outbox.js";
import { parseCode } from "./scan.js";

export const app = {
  device: null, // meta "device": {device_id, token, village_code}
  method: null, // the methodology parameter set (meta "method_document")
  scheduler: null,
  photoProgress: new Map(), // sha256 → bytes the server holds, live during a sync
  route: () => {}, // redraw the screen on show
  refreshBanner: () => {},
};

export function ago(ms) {
  const minutes = Math.floor((ms ?? 0) / 60000);
  if (minutes < 1) return t("age.now");
  if (minutes < 60) return t("age.minutes", { n: minutes });
  const hours = Math.floor(minutes / 60);
  return hours < 48 ? t("age.hours", { n: hours }) : t("age.days", { n: Math.floor(hours / 24) });
}

/** A moment in Beijing time, as people write it: "12月7日 21:05" (the year when not this one). */
export function beijingTime(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return "";
  const thisYear = new Date().getFullYear() === when.getFullYear();
  return when.toLocaleString(language() === "zh" ? "zh-CN" : "en-GB", {
    timeZone: "Asia/Shanghai", year: thisYear ? undefined : "numeric", month: language() === "zh" ? "long" : "short",
    day: "numeric", hour: "2-digit", minute: "2-digit", hour12: false,
  });
}

export const bytes = (n) => (n >= 1e6 ? t("unit.mb", { n: number(n / 1e6) }) : t("unit.kb", { n: number(n / 1e3, 0) }));
export const speciesOf = (id) => app.method?.species.find((s) => s.id === id) ?? null;
export const speciesName = (id) => {
  const species = speciesOf(id);
  if (!species) return id;
  return language() === "zh" ? species.name_zh : `${species.name_zh} · ${species.scientific_name}`;
};

export const households = () => withStore("households", "readonly", (s) => s.getAll());

/** The enrolled village as the last pull described it: {code, name, township, latitude, longitude}. */
export const villageInfo = async () => (await getMeta("village")) ?? { code: app.device?.village_code, name: null };

const BEIJING_MS = 8 * 3600 * 1000;

/** When this measuring season began: 1 January, Beijing time (ms since the epoch). */
export function seasonStart(now = Date.now()) {
  return Date.UTC(new Date(now + BEIJING_MS).getUTCFullYear(), 0, 1) - BEIJING_MS;
}

export const measuredThisSeason = (tree) => !!tree.client_time && Date.parse(tree.client_time) >= seasonStart();

/** A household's state this season: "flagged" (a tree awaits review), "measured" (every
 * standing tree measured since the season began) or "todo". */
export function householdState(trees) {
  const alive = trees.filter((tree) => (tree.status ?? "alive") === "alive");
  if (alive.some((tree) => tree.open_flags?.length)) return "flagged";
  return alive.length && alive.every(measuredThisSeason) ? "measured" : "todo";
}

/** "第 0042 户 · 王*三" with the door number when the roster has one. */
export function householdLabel(row) {
  const seq = String(row.seq ?? "").padStart(4, "0");
  return [t("household.number", { seq }), row.head_name ?? null, row.door_number ?? null].filter(Boolean).join(" · ");
}

/** Whether `query` (part of a name, a door or household number, or a code) finds `row`. */
export function householdMatches(row, query) {
  const wanted = query.trim().toLowerCase().replace(/\s+/g, "");
  if (!wanted) return true;
  const name = row.head_name ?? "";
  const seq = String(row.seq ?? "");
  return [name, name.replace(/\*/g, ""), row.door_number ?? "", seq, seq.padStart(4, "0"), row.code]
    .some((text) => text.toLowerCase().replace(/\s+/g, "").includes(wanted));
}

/** The village's trees as pulled, with this phone's unsynced operations laid over them. */
export async function villageTrees() {
  const [stored, waiting] = await Promise.all([
    withStore("trees", "readonly", (s) => s.getAll()), pendingOps(100000),
  ]);
  const trees = new Map(stored.map((tree) => [tree.id, { ...tree }]));
  for (const op of waiting) {
    const p = op.payload;
    let tree = trees.get(op.record_id);
    if (op.kind === "tree.register") {
      if (tree) continue;
      tree = {
        id: op.record_id, household: p.household_code, species_id: p.species_id,
        position: p.position, tag: p.tag ?? null, status: "alive", version: 0, open_flags: [],
      };
      trees.set(tree.id, tree);
    }
    if (!tree) continue;
    tree.unsynced = true;
    tree.version = (tree.version ?? 0) + 1;
    if (op.kind === "tree.status") tree.status = p.status;
    if (op.kind === "tree.measure") {
      const stems = p.stems_mm ?? [p.dbh_mm];
      Object.assign(tree, {
        measurement_id: p.measurement_id, dbh_mm: Math.round(equivalentDbh(stems)),
        height_cm: p.height_cm ?? null, client_time: op.client_time, awaiting_photo: !!p.photo_sha256,
      });
      try {
        tree.co2e_g = estimateTree(app.method, tree.species_id, tree.dbh_mm / 10, (p.height_cm ?? 0) / 100 || null).co2e_g;
      } catch { tree.co2e_g = null; }
    }
  }
  return [...trees.values()];
}

/** Why a household code cannot be opened here (invalid, other_village, not_in_roster), or null. */
export async function householdProblem(text) {
  const code = parseCode(text);
  if (code.type !== "household" || !code.valid) return { problem: "invalid", code };
  if (code.village !== app.device.village_code) return { problem: "other_village", code };
  const row = await withStore("households", "readonly", (s) => s.get(code.value));
  return row ? { problem: null, code, household: row } : { problem: "not_in_roster", code };
}

/** The parameter set: the cached one at once, a newer one fetched when the server has it. */
export async function refreshMethod({ force = false } = {}) {
  app.method ??= (await getMeta("method_document")) ?? null;
  const announced = (await getMeta("method"))?.version; // stored by each pull
  if (!force && app.method && (!announced || announced === app.method.version)) return app.method;
  if (!navigator.onLine) return app.method;
  try {
    const { current: version } = await callJson("GET", "/api/v1/carbon/methods");
    if (app.method?.version !== version) {
      const found = await callJson("GET", `/api/v1/carbon/methods/${encodeURIComponent(version)}`);
      app.method = { ...found.document, sha256: found.sha256 };
      await setMeta("method_document", app.method);
    }
  } catch { /* offline or refused: keep the cached set */ }
  return app.method;
}

const STORAGE_WARN_SHARE = 0.8; // DESIGN.md §5: warn when the site's storage is this full

/** The browser's storage for this site: {usage, quota, share, nearlyFull}, or null if unknown. */
export async function storageUse() {
  try {
    const { usage = 0, quota = 0 } = (await navigator.storage?.estimate?.()) ?? {};
    if (!quota) return null;
    const share = usage / quota;
    return { usage, quota, share, nearlyFull: share >= STORAGE_WARN_SHARE };
  } catch {
    return null;
  }
}
