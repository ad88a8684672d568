// Per-tree carbon stock in the browser: the same methodology and arithmetic as
// server/carbon/estimate.py, evaluated offline from the parameter set the server publishes
// (GET /api/v1/carbon/methods/<version>). Keep the order of operations identical.

const CO2_PER_C = 44 / 12;

export const toGrams = (kilograms) => Math.floor(kilograms * 1000 + 0.5);

export const equivalentDbh = (stems) => Math.sqrt(stems.reduce((sum, d) => sum + d * d, 0));

const Z90 = 1.6448536269514722; // two-sided 90 % normal quantile
const STEP_CM = 1e-3;

// Σ CF·a·D^b·H^c over a published equation's terms (a given as a or as ln a).
function terms(list, dbh, height) {
  let total = 0;
  for (const term of list) {
    const a = "ln_a" in term ? Math.exp(term.ln_a) : term.a;
    let value = a * dbh ** term.b;
    if (term.c) value = value * height ** term.c;
    total += (term.bias_factor ?? 1) * value;
  }
  return total;
}

// B = a·D^b·H^c on the DBH branch (listed largest first); below a switch the value is capped
// at the next branch's value at the switch, so biomass never falls as DBH grows.
function powerModel(branches, dbh, height) {
  const index = branches.findIndex((b) => dbh >= b.dbh_min_cm);
  const branch = branches[index];
  let value = branch.a * dbh ** branch.b * height ** branch.c;
  if (index > 0) {
    const above = branches[index - 1];
    const atSwitch = above.a * above.dbh_min_cm ** above.b * height ** above.c;
    value = Math.min(value, atSwitch);
  }
  return value;
}

function biomass(species, dbh, height) {
  if (species.route === "species_model") {
    const agb = powerModel(species.agb, dbh, height);
    const bgb = powerModel(species.bgb, dbh, height);
    return [agb, bgb, agb * species.carbon_fraction_above + bgb * species.carbon_fraction_below];
  }
  let params, agb;
  if (species.route === "species_equation") {
    params = species.equation;
    agb = terms(params.agb_terms, dbh, height);
  } else if (species.route === "volume_route") {
    params = species.volume;
    const volume = params.c * dbh ** params.a * height ** params.b;
    agb = volume * params.wood_density * params.bef * 1000;
  } else { // generic: AGB = a·ρ·D^b, DBH only
    params = species.generic;
    agb = params.a * params.wood_density * dbh ** params.b;
  }
  const bgb = agb * params.root_shoot;
  return [agb, bgb, (agb + bgb) * params.carbon_fraction];
}

/** Whether the species' route uses tree height. */
export function needsHeight(species) {
  if (species.route === "species_model") {
    return [...species.agb, ...species.bgb].some((branch) => branch.c !== 0);
  }
  if (species.route === "species_equation") return species.equation.agb_terms.some((term) => term.c);
  return species.route === "volume_route";
}

/** Height from the species' height–diameter curve, for a tree measured without height. */
export function estimatedHeightM(method, speciesId, dbhCm) {
  const model = method.species.find((s) => s.id === speciesId).height_model;
  return 1.3 + (model.h_max_m - 1.3) * (1 - Math.exp(-model.rate * dbhCm));
}

/** [AGB, BGB, carbon] in kg: the sum over the tree's stems (one height for all). */
export function stemBiomass(species, stems, height) {
  let agb = 0, bgb = 0, carbon = 0;
  for (const stem of stems) {
    const parts = biomass(species, stem, height);
    agb += parts[0]; bgb += parts[1]; carbon += parts[2];
  }
  return [agb, bgb, carbon];
}

/** Whether a tree measured without height is given one from the species' curve. */
export const estimatesHeight = (species) => "height_model" in species;

const u90 = (sd, amount) => (amount === 0 ? 100 : Math.ceil(Number((100 * Z90 * sd / Math.abs(amount)).toFixed(9))));

/** 90 % half-width of one tree's stock, % (as server/carbon/uncertainty.py stock_u90_pct). */
export function stockU90Pct(method, speciesId, stems, heightM) {
  const species = findSpecies(method, speciesId);
  const error = method.measurement_error;
  const [low, high] = species.fitted_range.dbh_cm;
  let height = heightM;
  const estimated = height === null && needsHeight(species);
  if (estimated) height = estimatedHeightM(method, speciesId, Math.max(...stems));
  const carbon = (stem, h) => stemBiomass(species, [stem], h)[2];
  let total = 0, modelSd = 0, dbhVar = 0, dcDh = 0;
  for (const stem of stems) {
    const c = carbon(stem, height);
    total += c;
    modelSd += species.model_error.sigma_ln * Math.max(1, stem / high, low / stem) * c;
    const step = Math.min(STEP_CM, stem / 10);
    const slope = (carbon(stem + step, height) - carbon(stem - step, height)) / (2 * step);
    dbhVar += (slope * ((error.dbh_cm + error.dbh_share * stem) / Z90)) ** 2;
    if (height !== null && needsHeight(species)) {
      dcDh += (carbon(stem, height + STEP_CM) - carbon(stem, height - STEP_CM)) / (2 * STEP_CM);
    }
  }
  let heightSd = 0;
  if (estimated) heightSd = species.height_model.rmse_m;
  else if (dcDh) heightSd = Math.max(error.height_m, error.height_share * height) / Z90;
  return u90(Math.sqrt(modelSd ** 2 + dbhVar + (dcDh * heightSd) ** 2), total);
}

function findSpecies(method, speciesId) {
  const species = method.species.find((s) => s.id === speciesId);
  if (!species) throw new Error(`unknown species ${speciesId}`);
  if (species.route === "excluded") throw new Error(species.excluded_reason);
  return species;
}

/**
 * Stock of one measured tree: {route, agb_kg, bgb_kg, carbon_kg, co2e_g, uncertainty_pct,
 * inputs}. `dbhCm` is a number, or an array of each stem's DBH for a multi-stem tree; a
 * `heightM` of null gets the species' height–diameter curve where the route needs height.
 */
export function estimateTree(method, speciesId, dbhCm, heightM = null, count = 1) {
  const species = findSpecies(method, speciesId);
  const stems = Array.isArray(dbhCm) ? dbhCm : [dbhCm];
  const dbh = Array.isArray(dbhCm) ? equivalentDbh(stems) : dbhCm;
  const inputs = { dbh_cm: dbh, height_m: heightM };
  if (Array.isArray(dbhCm)) inputs.stems_cm = [...stems];
  let height = heightM;
  if (heightM !== null) inputs.height_source = "measured";
  else if (needsHeight(species) && estimatesHeight(species)) {
    height = estimatedHeightM(method, speciesId, Math.max(...stems));
    Object.assign(inputs, { height_m: height, height_source: "estimated" });
  }
  const [agb, bgb, carbon] = method.stems === "sum"
    ? stemBiomass(species, stems, height) : biomass(species, dbh, height);
  const co2e = toGrams(carbon * CO2_PER_C);
  const uncertainty = "model_error" in species
    ? stockU90Pct(method, speciesId, stems, heightM) : species.uncertainty_pct;
  return {
    species: speciesId, route: species.route, method_version: method.version, inputs,
    agb_kg: agb, bgb_kg: bgb, carbon_kg: carbon, co2e_g: co2e,
    uncertainty_pct: uncertainty, projection: false, count,
    total_co2e_g: co2e * count,
  };
}

function projectedSize(species, age) {
  const c = species.projection;
  const dbh = c.dbh_max_cm * (1 - Math.exp(-c.dbh_rate * age)) ** c.dbh_shape;
  const height = 1.3 + (c.height_max_m - 1.3) * (1 - Math.exp(-c.height_rate * dbh));
  return [dbh, height];
}

/** Age-only projection: stock at `age` and the last year's growth. Never credited. */
export function projectTree(method, speciesId, age, count = 1) {
  const species = findSpecies(method, speciesId);
  const carbonAt = (years) => {
    const [dbh, height] = projectedSize(species, years);
    return dbh > 0 ? biomass(species, dbh, height)[2] : 0;
  };
  const [dbh, height] = projectedSize(species, age);
  const [agb, bgb, carbon] = biomass(species, dbh, height);
  const co2e = toGrams(carbon * CO2_PER_C);
  const annual = co2e - toGrams(carbonAt(age - 1) * CO2_PER_C);
  const uncertainty = "model_error" in species
    ? stockU90Pct(method, speciesId, [dbh], height) : species.uncertainty_pct;
  return {
    species: speciesId, route: species.route, method_version: method.version,
    agb_kg: agb, bgb_kg: bgb, carbon_kg: carbon, co2e_g: co2e,
    uncertainty_pct: uncertainty, projection: true, annual_co2e_g: annual, count,
    total_co2e_g: co2e * count, total_annual_co2e_g: annual * count,
    inputs: { age, projected_dbh_cm: dbh, projected_height_m: height },
  };
}
