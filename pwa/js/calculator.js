// The public calculator: species + DBH/height (or age) → CO2e, computed on the phone with the
// parameter set the server publishes, cached so it keeps working offline.
import { estimateTree, needsHeight, projectTree } from "./carbon.js";

const CACHE_KEY = "sipang.method";
const $ = (id) => document.getElementById(id);

async function loadMethod() {
  try {
    const { current } = await (await fetch("/api/v1/carbon/methods")).json();
    const method = await (await fetch(`/api/v1/carbon/methods/${current}`)).json();
    const doc = { ...method.document, sha256: method.sha256 };
    localStorage.setItem(CACHE_KEY, JSON.stringify(doc));
    return doc;
  } catch (offline) {
    const cached = localStorage.getItem(CACHE_KEY);
    if (!cached) throw offline;
    return JSON.parse(cached);
  }
}

const kg = (grams) => `${(grams / 1000).toLocaleString("zh-CN", { maximumFractionDigits: 3 })} 千克`;
const tonnes = (grams) => `${(grams / 1e6).toLocaleString("zh-CN", { maximumFractionDigits: 3 })} 吨`;

function fillSpecies(method, filter = "") {
  const select = $("species");
  const chosen = select.value;
  select.replaceChildren(...method.species
    .filter((s) => [s.name_zh, s.scientific_name, s.id, ...s.local_names].join(" ").includes(filter))
    .map((s) => new Option(`${s.name_zh}（${s.local_names.join("、")}）${s.route === "excluded" ? " — 暂不计入" : ""}`, s.id)));
  if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
}

function showError(message) {
  $("result").hidden = true;
  $("error").textContent = message;
  $("error").hidden = false;
}

function show(result) {
  $("error").hidden = true;
  $("result").hidden = false;
  $("result").classList.toggle("projection", result.projection);
  $("kind").textContent = result.projection
    ? "预测值：仅按树龄和平均生长曲线估算，仅供参考，不签发碳汇"
    : "实测估算：按胸径、树高计算的现存碳储量";
  $("co2e").textContent = kg(result.co2e_g);
  $("annual-label").hidden = $("annual").hidden = !result.projection;
  if (result.projection) $("annual").textContent = kg(result.annual_co2e_g);
  $("total").textContent = result.projection
    ? `${tonnes(result.total_co2e_g)}，每年 ${tonnes(result.total_annual_co2e_g)}`
    : tonnes(result.total_co2e_g);
  $("biomass").textContent = `${result.agb_kg.toFixed(2)} / ${result.bgb_kg.toFixed(2)} 千克`;
  $("flags").replaceChildren(...(result.notes || []).map((text) => {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }));
  const route = { species_model: "树种模型", volume_route: "材积法", generic: "通用方程（不确定性较大）" };
  $("method").textContent = `方法 ${result.method_version} · ${route[result.route]}`;
}

function calculate(method) {
  const species = method.species.find((s) => s.id === $("species").value);
  if (species.route === "excluded") return showError(species.excluded_reason);
  const count = Number($("count").value || 1);
  const mode = document.querySelector("input[name=mode]:checked").value;
  if (mode === "age") {
    const age = Number($("age").value);
    if (!(age >= 1 && age <= 300)) return showError("树龄应在 1–300 年之间");
    return show(projectTree(method, species.id, age, count));
  }
  const dbh = Number($("dbh").value);
  const height = $("height").value === "" ? null : Number($("height").value);
  if (!(dbh >= 0.1 && dbh <= 300)) return showError("胸径应在 0.1–300 厘米之间");
  if (needsHeight(species) && !(height >= 0.3 && height <= 80)) {
    return showError(`${species.name_zh}的树种模型需要树高（0.3–80 米）`);
  }
  const result = estimateTree(method, species.id, dbh, height, count);
  if (species.route === "generic") result.notes = ["该树种尚无引用的树种模型，使用通用方程，扣减更大的不确定性"];
  return show(result);
}

async function start() {
  let method;
  try {
    method = await loadMethod();
  } catch {
    return showError("首次使用需要联网下载计算参数");
  }
  window.sipangMethod = method;
  fillSpecies(method);
  $("species-search").addEventListener("input", (e) => fillSpecies(method, e.target.value.trim()));
  const toggle = () => {
    const byAge = document.querySelector("input[name=mode]:checked").value === "age";
    $("measured-fields").hidden = byAge;
    $("age-fields").hidden = !byAge;
  };
  document.querySelectorAll("input[name=mode]").forEach((r) => r.addEventListener("change", toggle));
  $("calculator").addEventListener("submit", (event) => {
    event.preventDefault();
    calculate(method);
  });
  document.body.dataset.ready = "true";
}

start();
