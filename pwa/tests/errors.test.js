// errorText: every failure a screen shows reads in the app's language. In Chinese (the
// default), a server message already in Chinese is kept, an English one gives way to the text
// for its code, an unknown code still reads as a Chinese sentence naming it, and no answer at
// all (or one cut short) is a sentence about signal, never "POST /x: Failed to fetch".
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { before, test } from "node:test";

import { ApiError, callJson } from "../js/api.js";
import { errorText, loadLanguage } from "../js/i18n.js";

const root = new URL("../", import.meta.url);
const catalogue = (lang) => JSON.parse(readFileSync(new URL(`i18n/${lang}.json`, root), "utf8"));
const HAN = /[\u3400-\u9fff]/;

// What i18n.js reads in a browser: the catalogue from /app/i18n/, the saved choice, the page.
before(() => {
  const saved = new Map();
  globalThis.localStorage = { getItem: (k) => saved.get(k) ?? null, setItem: (k, v) => saved.set(k, v) };
  globalThis.document = { documentElement: {}, querySelectorAll: () => [] };
});
async function speak(lang) {
  const real = globalThis.fetch;
  globalThis.fetch = async (url) => new Response(readFileSync(new URL(url.replace("/app/", ""), root)));
  try { await loadLanguage(lang); } finally { globalThis.fetch = real; }
}

const json = (body, status) => new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
const serverError = (status, code, message) => json({ error: { status, code, message, details: null } }, status);
// The ApiError api.js makes of an answer (or of no answer), as the screens receive it.
async function failureOf(answer) {
  try {
    await callJson("POST", "/api/v1/x", { fetchImpl: async () => answer() });
  } catch (error) {
    return error;
  }
  throw new Error("the call did not fail");
}

// Every code the app's own calls can be refused with (server routes the PWA calls, the
// operations a push may refuse, the app's own codes), and the flags a tree may show.
const CODES = [
  "bad_request", "invalid_json", "unauthorized", "invalid_credentials", "invalid_token", "forbidden",
  "out_of_scope", "device_required", "not_found", "method_not_allowed", "conflict", "payload_too_large",
  "unsupported_media_type", "validation_failed", "rate_limited", "csrf_failed", "internal_error",
  "server_unavailable",
  // sync push/pull and the operations it refuses
  "invalid_gzip", "invalid_batch", "wrong_device", "unknown_tree", "unknown_household", "duplicate_tree",
  "invalid", "sequence_reused", "before_registration",
  // flags on a tree (their reasons may be English)
  "stale_edit", "dbh_implausible", "height_implausible", "shape_implausible",
  // photo uploads
  "hash_mismatch", "past_the_end", "offset_mismatch", "upload_busy",
  // enrolment, the app's own
  "invalid_enrolment_code", "not_enrolled", "outbox_not_empty", "not_verifier",
  // verification and baseline re-measurements and decisions
  "not_assigned", "already_decided", "sample_incomplete", "not_in_sample", "already_remeasured",
  // push subscriptions
  "too_many_subscriptions",
];

test("every code the app can meet has a Chinese and an English text, and the catalogues match", () => {
  const zh = catalogue("zh");
  const en = catalogue("en");
  assert.deepEqual(Object.keys(zh).sort(), Object.keys(en).sort());
  for (const code of CODES) {
    assert.match(zh[`reason.${code}`] ?? "", HAN, `reason.${code} in zh.json`);
    assert.ok(en[`reason.${code}`] && !HAN.test(en[`reason.${code}`]), `reason.${code} in en.json`);
  }
  for (const key of ["error.network", "error.other"]) assert.match(zh[key], HAN);
});

test("in Chinese, an English server message reads as the text for its code", async () => {
  await speak("zh");
  const failure = await failureOf(() => serverError(409, "conflict", "This client_id was used for another tree."));
  assert.equal(failure.message, "This client_id was used for another tree."); // kept for the developer
  assert.equal(errorText(failure), "与已保存的数据冲突。");
  const enrol = await failureOf(() => serverError(401, "invalid_enrolment_code", "This enrolment code was just used."));
  assert.equal(errorText(enrol), "注册码无效、已用过或已过期。");
  const photo = await failureOf(() => serverError(422, "hash_mismatch", "The bytes do not match their sha256; send again."));
  assert.match(errorText(photo), /^照片在上传途中损坏/);
});

test("in Chinese, a message the server already wrote in Chinese is kept", async () => {
  await speak("zh");
  const failure = await failureOf(() => serverError(422, "not_in_sample", "这棵树不在本次基线复核的样本里。"));
  assert.equal(errorText(failure), "这棵树不在本次基线复核的样本里。");
  assert.equal(errorText({ code: "before_registration", reason: "测量日期 2026-01-02 早于这棵树的登记时间 2026-02-01" }),
    "测量日期 2026-01-02 早于这棵树的登记时间 2026-02-01。"); // a sentence, ended
});

test("in Chinese, a code without a text still reads as a Chinese sentence that names it", async () => {
  await speak("zh");
  const failure = await failureOf(() => serverError(409, "brand_new_refusal", "Something new went wrong."));
  const text = errorText(failure);
  assert.match(text, HAN);
  assert.ok(text.includes("brand_new_refusal") && !text.includes("Something new"), text);
  assert.ok(errorText(new TypeError("x is undefined")).includes("TypeError"));
  assert.match(errorText(new TypeError("x is undefined")), HAN);
});

test("no answer, a cut-short answer, a busy server or a proxy's page read as sentences, not raw messages", async () => {
  await speak("zh");
  const offline = await failureOf(() => { throw new TypeError("Failed to fetch"); });
  assert.equal(offline.status, 0);
  assert.equal(errorText(offline), catalogue("zh")["error.network"]);
  assert.ok(!errorText(offline).includes("Failed to fetch"));
  const cut = await failureOf(() => new Response('{"results": [', { status: 200 }));
  assert.match(cut.message, /garbled/);
  assert.equal(errorText(cut), catalogue("zh")["error.network"]);
  // A 503 in the one error shape keeps its code (retried all the same).
  const busy = await failureOf(() => serverError(503, "upload_busy", "This photo is being received; try again shortly."));
  assert.deepEqual([busy.code, busy.permanent], ["upload_busy", false]);
  assert.equal(errorText(busy), "这张照片正在接收中，请稍后再试。");
  const proxy = await failureOf(() => new Response("<html>Bad Gateway</html>", { status: 502 }));
  assert.deepEqual([proxy.code, proxy.permanent], [null, false]);
  assert.equal(errorText(proxy), catalogue("zh")["reason.server_unavailable"]);
  const limited = await failureOf(() => new Response("", { status: 429, headers: { "Retry-After": "5" } }));
  assert.deepEqual([limited.retryAfterMs, errorText(limited)], [5000, "尝试次数太多，请稍后再试。"]);
});

test("refused operations, tree flags and a verifier's kept refusals go through the same words", async () => {
  await speak("zh");
  const refused = { op_id: "o1", status: "rejected", code: "unknown_household", reason: "no household has this code" };
  assert.equal(errorText(refused), "名册里没有这个农户编码。");
  assert.equal(errorText({ code: "stale_edit", reason: "made on version 1 of the tree, but the server had version 2: review both" }),
    catalogue("zh")["reason.stale_edit"]);
  assert.equal(errorText({ code: "photo_missing", reason: "没有拍树的照片" }), "没有拍树的照片。");
  assert.equal(errorText({ code: "not_in_sample", message: null }), "这棵树不在本次核查的样本里。");
  assert.equal(errorText("tree_not_in_sample").includes("tree_not_in_sample"), true); // as older phones kept it
  assert.equal(errorText("already_decided"), "这次核查已经结束。");
  assert.equal(errorText(new ApiError("", { code: "not_verifier", permanent: true })), "这个账号不是核查员。");
});

test("in English, the server's English stays; codes without words and no answer read in English", async () => {
  await speak("en");
  const failure = await failureOf(() => serverError(409, "conflict", "This client_id was used for another tree."));
  assert.equal(errorText(failure), "This client_id was used for another tree.");
  assert.equal(errorText({ code: "not_in_sample", message: "这棵树不在本次核查的样本里。" }), "这棵树不在本次核查的样本里。");
  assert.equal(errorText("already_decided"), catalogue("en")["reason.already_decided"]);
  const offline = await failureOf(() => { throw new TypeError("Failed to fetch"); });
  assert.equal(errorText(offline), catalogue("en")["error.network"]);
  const proxy = await failureOf(() => new Response("<html>Bad Gateway</html>", { status: 502 }));
  assert.equal(errorText(proxy), catalogue("en")["reason.server_unavailable"]);
  await speak("zh");
});

test("no screen shows an error's raw message: they all go through errorText", () => {
  const dir = new URL("js/", root);
  for (const name of readdirSync(dir).filter((n) => n.endsWith(".js") && !["api.js", "i18n.js"].includes(n))) {
    const source = readFileSync(new URL(name, dir), "utf8");
    assert.doesNotMatch(source, /(?<![.?])\b(error|failure)\??\.message\b/, name);
  }
});
