// The public calculator: species + DBH/height (or age) → CO2e, computed on the phone with the
// parameter set the server publishes, cached so it keeps working offline.
import { callJson } from "./api.js";
import { estimateTree, estimatesHeight, needsHeight, projectTree } from "./carbon.js";

const CACHE_KEY = "sipang.method";
const $ = (id) => document.getElementById(id);

async function loadMethod() {
  try {
    const { current } = await callJson("GET", "/api/v1/carbon/methods");
    const method = await callJson("GET", `/api/v1/carbon/methods/${encodeURIComponent(current)}`);
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

const ROUTES = {
  species_model: "国家标准树种模型",
  species_equation: "已发表的树种方程",
  volume_route: "材积法",
  generic: "通用方程（按该树种木材密度，不确定性较大）",
  excluded: "暂不计入碳汇",
};

// What the chosen species is computed with: its step on the ladder, route, source, the range
// its equation was fitted on and its carbon fraction (the same fields as GET /api/v1/species).
function showSpecies(method) {
  const species = method.species.find((s) => s.id === $("species").value);
  if (!species) return;
  const fraction = species.route === "species_model"
    ? `地上 ${species.carbon_fraction_above}，地下 ${species.carbon_fraction_below}`
    : String((species.equation || species.generic || species.volume || {}).carbon_fraction ?? "—");
  const fitted = species.fitted_range;
  const range = fitted
    ? `胸径 ${fitted.dbh_cm[0]}–${fitted.dbh_cm[1]} 厘米${fitted.n ? `，样本 ${fitted.n} 株` : "，样本数未报告"}`
    : "—";
  const sources = species.sources || {};
  const source = sources["equation.agb_terms"] || sources.agb
    || [sources["generic.a"], sources["generic.wood_density"]].filter(Boolean).join("；")
    || sources.excluded_reason || "—";
  $("species-route").textContent = species.ladder_step
    ? `第 ${species.ladder_step} 级 · ${ROUTES[species.route]}` : ROUTES[species.route];
  $("species-range").textContent = range;
  $("species-fraction").textContent = species.route === "excluded" ? "—" : fraction;
  $("species-source").textContent = source;
  $("height-label").firstChild.textContent = needsHeight(species) && !estimatesHeight(species)
    ? "树高（米，必填）" : "树高（米，可不填）";
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
  $("uncertainty").textContent = `±${result.uncertainty_pct} %（90 % 置信区间）`;
  $("flags").replaceChildren(...(result.notes || []).map((text) => {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }));
  $("method").textContent = `方法 ${result.method_version} · ${ROUTES[result.route]}`;
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
  // One DBH, or each stem's DBH of a tree forked below 1.3 m ("12, 8"): the sum of the stems.
  const stems = $("dbh").value.split(/[,，、\s]+/).filter(Boolean).map(Number);
  const height = $("height").value === "" ? null : Number($("height").value);
  if (!stems.length || !stems.every((d) => d >= 0.1 && d <= 300)) return showError("胸径应在 0.1–300 厘米之间");
  if (height !== null && !(height >= 0.3 && height <= 80)) return showError("树高应在 0.3–80 米之间");
  if (height === null && needsHeight(species) && !estimatesHeight(species)) {
    return showError(`${species.name_zh}的树种模型需要树高（0.3–80 米）`);
  }
  const result = estimateTree(method, species.id, stems.length > 1 ? stems : stems[0], height, count);
  const notes = [];
  if (stems.length > 1) notes.push(`多干树：按 ${stems.length} 个分干分别计算后相加`);
  if (result.inputs.height_source === "estimated") {
    notes.push(`未填树高：按${species.name_zh}的树高曲线估算为 ${result.inputs.height_m.toFixed(1)} 米`);
  }
  const fitted = species.fitted_range;
  if (fitted && stems.some((d) => d < fitted.dbh_cm[0] || d > fitted.dbh_cm[1])) {
    notes.push(`胸径超出方程的拟合范围（${fitted.dbh_cm[0]}–${fitted.dbh_cm[1]} 厘米）：储量为外推值，超出部分的生长不计入碳汇`);
  }
  if (species.route === "generic") notes.push("该树种尚无引用的树种方程：按该树种的木材密度用通用方程估算，不确定性较大");
  result.notes = notes;
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
  showSpecies(method);
  $("species-search").addEventListener("input", (e) => {
    fillSpecies(method, e.target.value.trim());
    showSpecies(method);
  });
  $("species").addEventListener("change", () => showSpecies(method));
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
