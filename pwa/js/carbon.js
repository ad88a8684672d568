// Per-tree carbon stock in the browser: the same methodology and arithmetic as
// server/carbon/estimate.py, evaluated offline from the parameter set the server publishes
// (GET /api/v1/carbon/methods/<version>). Keep the order of operations identical.

const CO2_PER_C = 44 / 12;

export const toGrams = (kilograms) => Math.floor(kilograms * 1000 + 0.5);

export const equivalentDbh = (stems) => Math.sqrt(stems.reduce((sum, d) => sum + d * d, 0));

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
  if (species.route === "volume_route") {
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
  return species.route === "volume_route";
}

function findSpecies(method, speciesId) {
  const species = method.species.find((s) => s.id === speciesId);
  if (!species) throw new Error(`unknown species ${speciesId}`);
  if (species.route === "excluded") throw new Error(species.excluded_reason);
  return species;
}

/** Stock of one measured tree: {route, agb_kg, bgb_kg, carbon_kg, co2e_g, uncertainty_pct}. */
export function estimateTree(method, speciesId, dbhCm, heightM, count = 1) {
  const species = findSpecies(method, speciesId);
  const [agb, bgb, carbon] = biomass(species, dbhCm, heightM);
  const co2e = toGrams(carbon * CO2_PER_C);
  return {
    species: speciesId, route: species.route, method_version: method.version,
    agb_kg: agb, bgb_kg: bgb, carbon_kg: carbon, co2e_g: co2e,
    uncertainty_pct: species.uncertainty_pct, projection: false, count,
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
  return {
    species: speciesId, route: species.route, method_version: method.version,
    agb_kg: agb, bgb_kg: bgb, carbon_kg: carbon, co2e_g: co2e,
    uncertainty_pct: species.uncertainty_pct, projection: true, annual_co2e_g: annual, count,
    total_co2e_g: co2e * count, total_annual_co2e_g: annual * count,
    inputs: { age, projected_dbh_cm: dbh, projected_height_m: height },
  };
}
