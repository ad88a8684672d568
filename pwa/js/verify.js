// The verifier's screens: sign in, the samples assigned to me (kept on the phone for the field),
// a blind re-measurement of each sampled tree, queued offline and sent when there is signal
// (each with a client_id made on the phone, so a retry never counts twice), then the decision.

import { ApiError, call, callBlob, callJson } from "./api.js";
import { h, heading, link, notice, say } from "./dom.js";
import { drawMap, mapLegend, watchPosition, wayText } from "./geo.js";
import { errorText, number, t } from "./i18n.js";
import { forgetVerifier, getMeta, keepReport, keptReport, pendingRemeasurements, remeasurements,
  setMeta, settleRemeasurement } from "./outbox.js";
import { pushPanel } from "./push-panel.js";
import { SyncScheduler } from "./scheduler.js";
import { app } from "./state.js";

const ACCOUNT = "verifier"; // meta keys: the signed-in verifier, the samples
const SAMPLES = "verifier_samples";
const KEEP_DECIDED = 10; // decided samples kept on the phone, with their reports

let scheduler = null;
let onChange = () => {};

export const pendingCount = () => pendingRemeasurements();

// A baseline check (the village's registration readings) is kept beside the period samples
// under its own id, "b" and its number; its calls go to its own path.
const isBaseline = (id) => String(id).startsWith("b");
const pathOf = (id) => (isBaseline(id) ? `/api/v1/baseline-checks/${String(id).slice(1)}` : `/api/v1/verifications/${id}`);

/** Send what waits, oldest first; a refusal is kept with its reason, a failure retried later. */
async function flush() {
  const account = await getMeta(ACCOUNT);
  if (!account) return false;
  try {
    for (const item of await remeasurements("pending")) {
      const { verification_id: id, state, error, created_at, ...body } = item;
      let outcome;
      try {
        await callJson("POST", `${pathOf(id)}/remeasurements`, { token: account.token, json: body });
        outcome = { state: "sent" };
      } catch (failure) {
        if (!failure.permanent) throw failure;
        // kept as the server said it; errorText turns it into words when it is shown
        const reason = { code: failure.code, message: failure.body?.error?.message ?? null };
        outcome = { state: failure.code === "already_remeasured" ? "sent" : "refused", error: reason };
      }
      await settleRemeasurement(item.client_id, outcome);
      onChange();
    }
  } finally {
    onChange();
  }
  await refreshSamples().catch(() => {});
  return false;
}

async function refreshSamples() {
  const account = await getMeta(ACCOUNT);
  if (!account || !navigator.onLine) return null;
  const found = await callJson("GET", "/api/v1/verifier/assignments", { token: account.token });
  const checks = (found.baseline_checks ?? []).map((check) => ({ ...check, id: `b${check.id}` }));
  const assignments = [...found.assignments, ...checks];
  // A decided sample leaves the server's list; the phone keeps the last few, with the decision,
  // so what was found in the field stays at hand.
  const open = new Set(assignments.map((sample) => sample.id));
  const decided = ((await getMeta(SAMPLES)) ?? []).filter((sample) => !open.has(sample.id))
    .map((sample) => ({ ...sample, decided: sample.decided ?? { status: "closed" } })).slice(-KEEP_DECIDED);
  const samples = [...assignments, ...decided];
  await setMeta(SAMPLES, samples);
  await forgetVerifier(samples.map((sample) => sample.id)); // reports of samples no longer kept
  for (const sample of decided.filter((s) => !isBaseline(s.id))) await fetchReport(account, sample).catch(() => {});
  return samples;
}

/** A decided sample's report, fetched once and kept on the phone (null until then). */
async function fetchReport(account, sample) {
  const kept = await keptReport(sample.id);
  if (kept || !navigator.onLine) return kept;
  const blob = await callBlob("GET", `/api/v1/verifications/${sample.id}/report.pdf`, { token: account.token });
  await keepReport(sample.id, blob);
  return blob;
}

/** The link to a decided sample's report (PDF), from the phone's copy so it opens offline. */
function reportLink(ctx, account, sample) {
  const holder = h("p", { class: "report", id: "report" });
  say(holder, "verify.report_loading", {}, "info");
  fetchReport(account, sample).then((blob) => {
    if (!blob) return say(holder, "verify.report_offline", {}, "warn");
    const url = URL.createObjectURL(blob);
    ctx.onLeave(() => URL.revokeObjectURL(url));
    holder.removeAttribute("data-tone");
    holder.replaceChildren(h("a", {
      href: url, id: "report-link", class: "button", download: t("verify.report_file", { id: sample.id }),
    }, t("verify.report_link")));
  }, () => say(holder, "verify.report_offline", {}, "warn"));
  return holder;
}

/** Start the verifier's sender (once per page); `changed` redraws the banner and screen. */
export function startVerifier(changed) {
  onChange = changed;
  scheduler ??= new SyncScheduler({ run: flush });
  window.addEventListener("online", () => scheduler.kick("online"));
  getMeta(ACCOUNT).then((account) => account && scheduler.kick("open"));
  return scheduler;
}

// --- screens -----------------------------------------------------------------------------

export async function signIn() {
  const username = h("input", { id: "username", autocomplete: "username", required: true, autocapitalize: "none" });
  const password = h("input", { id: "password", type: "password", autocomplete: "current-password", required: true });
  const status = h("p", { class: "message", role: "status", id: "signin-status" });
  const submit = h("button", { type: "submit", class: "big primary", id: "signin" }, t("verify.signin"));
  const form = h("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      submit.disabled = true;
      say(status, "verify.signing_in", {}, "info");
      try {
        const found = await callJson("POST", "/api/v1/auth/tokens", {
          json: { username: username.value.trim(), password: password.value, label: "verifier phone" },
        });
        if (found.user.role !== "verifier") {
          await call("DELETE", "/api/v1/auth/tokens/current", { token: found.token }).catch(() => {});
          throw new ApiError("", { status: 403, code: "not_verifier", permanent: true });
        }
        await setMeta(ACCOUNT, { token: found.token, user: found.user });
        await refreshSamples();
        location.hash = "#/verify";
        app.route();
      } catch (failure) {
        submit.disabled = false;
        const key = failure.status === 0 ? "verify.offline"
          : failure.code === "not_verifier" ? "verify.not_verifier"
            : failure.status === 429 ? "verify.too_many"
              : failure.code === "invalid_credentials" ? "verify.bad_password" : "verify.sign_in_failed";
        say(status, key, { message: errorText(failure) });
      }
    },
  }, h("label", { for: "username" }, t("verify.username")), username,
  h("label", { for: "password" }, t("verify.password")), password, submit, status);
  return h("section", {}, heading("verify.title"), h("p", {}, t("verify.intro")), form,
    link("#/enrol", "verify.measurer_instead"));
}

const doneFor = (queue, sampleId) => new Set(queue.filter((q) => q.verification_id === sampleId && q.state !== "refused").map((q) => q.tree_id));

export async function screenSamples(ctx) {
  const account = await getMeta(ACCOUNT);
  if (!account) return signIn();
  const status = h("p", { class: "message", role: "status", id: "samples-status" });
  let samples = (await getMeta(SAMPLES)) ?? [];
  const queue = await remeasurements();
  const list = () => (samples.length
    ? h("ul", { class: "list", id: "samples" }, samples.map((sample) => {
      const done = new Set([...doneFor(queue, sample.id), ...sample.trees.filter((x) => x.remeasured_client_id).map((x) => x.tree_id)]);
      return h("li", {}, h("a", { href: `#/verify/${sample.id}`, class: "item" },
        h("strong", {}, title(sample)),
        h("span", {}, isBaseline(sample.id) ? t("verify.baseline_what")
          : t("verify.period", { start: sample.period_start, end: sample.period_end })),
        h("span", {}, t("verify.progress", { done: done.size, total: sample.trees.length })),
        sample.decided ? h("span", { class: "badge done" }, t("verify.decided")) : null));
    }))
    : h("p", { class: "message", "data-tone": "info" }, t("verify.no_samples")));
  const holder = h("div", {}, list());
  const refresh = h("button", {
    type: "button", class: "big", id: "refresh-samples",
    onclick: async () => {
      say(status, "verify.refreshing", {}, "info");
      try {
        samples = (await refreshSamples()) ?? samples;
        holder.replaceChildren(list());
        say(status, navigator.onLine ? "verify.refreshed" : "verify.offline_cached", {}, navigator.onLine ? "ok" : "warn");
      } catch {
        say(status, "verify.refresh_failed", {}, "warn");
      }
    },
  }, t("verify.refresh"));
  const signOut = h("button", {
    type: "button", class: "small", id: "signout",
    onclick: async () => {
      if (await pendingCount()) return say(status, "verify.signout_pending");
      await call("DELETE", "/api/v1/auth/tokens/current", { token: account.token }).catch(() => {});
      for (const key of [ACCOUNT, SAMPLES]) await setMeta(key, null);
      await forgetVerifier();
      location.hash = "#/verify";
      app.route();
    },
  }, t("verify.signout"));
  ctx.refresh = () => app.route();
  return h("section", {}, heading("verify.samples"),
    h("p", { class: "meta" }, t("verify.signed_in", { name: account.user.display_name })),
    refresh, status, holder,
    pushPanel({ explain: "push.explain_verifier", token: account.token, kinds: ["sample_assigned"] }), signOut);
}

const title = (sample) => (isBaseline(sample.id)
  ? t("verify.baseline_title", { village: sample.village_name, id: sample.id.slice(1) })
  : t("verify.sample_title", { village: sample.village_name, id: sample.id }));

/** What the server decided, in the words the screen says it with. */
function outcomeOf(sample, answer) {
  if (isBaseline(sample.id)) {
    const check = answer.baseline_check;
    return { status: `baseline_${check.status}`, pct: number((check.excess_ppm ?? 0) / 10000) };
  }
  const { verification } = answer;
  return {
    status: verification.status, passed: verification.passed_trees, failed: verification.failed_trees,
    pct: number(verification.scale_ppm / 10000),
  };
}

export async function sampleOf(id) {
  return ((await getMeta(SAMPLES)) ?? []).find((sample) => String(sample.id) === String(id)) ?? null;
}

export async function screenSample(ctx, id) {
  const account = await getMeta(ACCOUNT);
  if (!account) return signIn();
  // A sample just assigned (opened from its notification) is fetched before giving up.
  const sample = (await sampleOf(id)) ?? (await refreshSamples().catch(() => null), await sampleOf(id));
  if (!sample) return notice("verify.unknown_sample", {}, link("#/verify", "verify.back"));
  const queue = await remeasurements();
  const mine = new Map(queue.filter((q) => q.verification_id === sample.id).map((q) => [q.tree_id, q]));
  const decision = h("p", { class: "message", role: "status", id: "decision-status" });
  const allDone = sample.trees.every((tree) => tree.remeasured_client_id || mine.get(tree.tree_id)?.state === "sent");
  const note = h("input", { id: "note", maxlength: "500", "aria-label": t("verify.note") });
  const decide = h("form", {
    class: "decide",
    onsubmit: async (event) => {
      event.preventDefault();
      say(decision, "verify.deciding", {}, "info");
      try {
        const answer = await callJson("POST", `${pathOf(sample.id)}/decision`, {
          token: account.token, json: note.value.trim() ? { note: note.value.trim() } : {},
        });
        const decided = outcomeOf(sample, answer);
        say(decision, `verify.outcome_${decided.status}`, decided, decided.status.endsWith("failed") ? "error" : "ok");
        await setMeta(SAMPLES, ((await getMeta(SAMPLES)) ?? []).map((s) => (s.id === sample.id ? { ...s, decided } : s)));
        decide.remove();
        if (!isBaseline(sample.id)) decision.after(reportLink(ctx, account, sample)); // then its report
        await refreshSamples().catch(() => {});
      } catch (failure) {
        say(decision, failure.status === 0 ? "verify.offline" : "verify.decide_failed", { message: errorText(failure) });
      }
    },
  }, h("label", { for: "note" }, t("verify.note")), note,
  h("button", { type: "submit", class: "big primary", id: "decide", disabled: !allDone }, t("verify.decide")));
  ctx.refresh = () => app.route();
  const gps = h("p", { class: "message", role: "status", id: "verify-gps" });
  const mapBox = h("div", { class: "map-box" });
  const ways = new Map(sample.trees.map((tree) => [tree.tree_id, h("p", { class: "way" })]));
  let me = null;
  const draw = () => {
    const points = sample.trees.map((tree) => ({
      latitude: tree.latitude, longitude: tree.longitude,
      kind: mine.get(tree.tree_id) || tree.remeasured_client_id ? "done" : "todo", label: tree.species_name,
    }));
    mapBox.replaceChildren(drawMap(me ? [...points, { ...me, kind: "me", label: t("map.me") }] : points,
      { label: t("verify.map_label", { n: sample.trees.length }) }));
    for (const tree of sample.trees) {
      if (me && Number.isFinite(tree.latitude)) ways.get(tree.tree_id).textContent = wayText(me, tree);
    }
  };
  say(gps, "gps.waiting", {}, "info");
  ctx.onLeave(watchPosition((fix) => {
    me = fix;
    say(gps, "gps.fix", { lat: fix.latitude.toFixed(5), lon: fix.longitude.toFixed(5), m: Math.round(fix.accuracy) }, "ok");
    draw();
  }, (key) => say(gps, key, {}, "warn")));
  draw();
  return h("section", {},
    h("h1", { tabindex: "-1" }, title(sample)),
    h("p", { class: "meta" }, t(isBaseline(sample.id) ? "verify.baseline_intro" : "verify.sample_intro",
      { n: sample.trees.length, seed: sample.seed })),
    mapBox, mapLegend(["todo", "done", "me"]), gps,
    h("ul", { class: "cards", id: "sample-trees" }, sample.trees.map((tree) => {
      const item = mine.get(tree.tree_id);
      const state = tree.remeasured_client_id || item?.state === "sent" ? "sent" : item?.state ?? "todo";
      return h("li", { class: "card", "data-tree": tree.tree_id, "data-state": state },
        h("h3", {}, tree.species_name, " · ", t(`position.${tree.position}`)),
        h("p", { class: "code" }, tree.household_code, tree.tag ? ` · ${tree.tag}` : ""),
        h("img", { class: "tree-photo", loading: "lazy", alt: t("verify.photo_alt"),
          src: `/h/${tree.household_code}/trees/${tree.tree_id}.jpg` }),
        ways.get(tree.tree_id),
        h("p", {}, h("span", { class: `badge ${{ sent: "done", pending: "pending", refused: "rejected", todo: "waiting" }[state]}` }, t(`verify.state_${state}`)),
          item?.outcome && item.outcome !== "measured" ? ` ${t(`verify.outcome.${item.outcome}`)}` : "",
          item?.error ? ` ${t("verify.refused_reason", { reason: errorText(item.error) })}` : ""),
        state === "todo" || state === "refused" ? link(`#/verify/${sample.id}/${tree.tree_id}`, "verify.measure", {}, "button primary") : null);
    })),
    sample.decided ? h("p", { class: "message", "data-tone": "info", id: "decided" },
      t(`verify.outcome_${sample.decided.status}`, sample.decided)) : null,
    sample.decided && !isBaseline(sample.id) ? reportLink(ctx, account, sample) : null,
    allDone || sample.decided ? null : h("p", { class: "message", "data-tone": "info" }, t("verify.not_all_done")),
    sample.decided ? null : decide, decision, link("#/verify", "verify.back"));
}

/** Send what was just saved, when there is signal. */
export const kickSender = () => scheduler?.kick("save");

export const verifierSignedIn = async () => !!(await getMeta(ACCOUNT));
