// Finding a tree in the field with no tile service: distance and bearing from the phone's
// position, the phone's compass where it has one, and a plain map drawn from coordinates.

import { h } from "./dom.js";
import { number, t } from "./i18n.js";

const EARTH_M = 6371008.8;
const rad = (deg) => (deg * Math.PI) / 180;

/** Metres between two {latitude, longitude} points (haversine). */
export function distanceM(a, b) {
  const dLat = rad(b.latitude - a.latitude);
  const dLon = rad(b.longitude - a.longitude);
  const s = Math.sin(dLat / 2) ** 2 + Math.cos(rad(a.latitude)) * Math.cos(rad(b.latitude)) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_M * Math.asin(Math.min(1, Math.sqrt(s)));
}

/** The initial bearing from `a` to `b`, degrees clockwise from true north (0–359). */
export function bearingDeg(a, b) {
  const y = Math.sin(rad(b.longitude - a.longitude)) * Math.cos(rad(b.latitude));
  const x = Math.cos(rad(a.latitude)) * Math.sin(rad(b.latitude))
    - Math.sin(rad(a.latitude)) * Math.cos(rad(b.latitude)) * Math.cos(rad(b.longitude - a.longitude));
  return (Math.round((Math.atan2(y, x) * 180) / Math.PI) + 360) % 360;
}

const POINTS = ["n", "ne", "e", "se", "s", "sw", "w", "nw"];

/** "东北 45°, 120 米" (or in English): how far and which way. */
export function wayText(from, to) {
  const metres = distanceM(from, to);
  const bearing = bearingDeg(from, to);
  const distance = metres < 1000 ? t("geo.metres", { n: Math.round(metres) }) : t("geo.km", { n: number(metres / 1000, 2) });
  return t("geo.way", { point: t(`geo.point.${POINTS[Math.round(bearing / 45) % 8]}`), deg: bearing, distance });
}

/** Watch the phone's position: `onFix({latitude, longitude, accuracy})` or `onError(key)`. */
export function watchPosition(onFix, onError) {
  if (!("geolocation" in navigator)) {
    onError("gps.unsupported");
    return () => {};
  }
  const id = navigator.geolocation.watchPosition(
    ({ coords }) => onFix({ latitude: coords.latitude, longitude: coords.longitude, accuracy: coords.accuracy }),
    (error) => onError({ 1: "gps.denied", 2: "gps.unavailable", 3: "gps.timeout" }[error.code] ?? "gps.unavailable"),
    { enableHighAccuracy: true, maximumAge: 5000, timeout: 60000 },
  );
  return () => navigator.geolocation.clearWatch(id);
}

/** Watch the compass: `onHeading(degrees from north)` where the phone reports one. */
export function watchHeading(onHeading) {
  const event = "ondeviceorientationabsolute" in window ? "deviceorientationabsolute" : "deviceorientation";
  const listener = (e) => {
    const heading = e.webkitCompassHeading ?? (e.absolute && e.alpha !== null ? (360 - e.alpha) % 360 : null);
    if (heading !== null && heading !== undefined) onHeading(Math.round(heading));
  };
  window.addEventListener(event, listener);
  return () => window.removeEventListener(event, listener);
}

/** An arrow pointing at `bearing` while the phone faces `heading` (north-up without a compass). */
export function arrow(bearing, heading = null) {
  const turn = (bearing - (heading ?? 0) + 360) % 360;
  return h("span", { class: "arrow", "aria-hidden": "true", style: `transform: rotate(${turn}deg)` }, "↑");
}

const SVG = "http://www.w3.org/2000/svg";
const svg = (tag, attrs = {}, ...children) => {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) if (value !== null && value !== undefined) el.setAttribute(key, value);
  el.append(...children.filter(Boolean));
  return el;
};

// --- the county's map tiles, where configured (server/tiles.py mirrors this) ----------------

const MAX_ZOOM = 19;
const MAX_TILES = 16;
const tileX = (lon, z) => ((lon + 180) / 360) * 2 ** z;
const tileY = (lat, z) => {
  const r = rad(Math.max(Math.min(lat, 85.05112878), -85.05112878));
  return ((1 - Math.asinh(Math.tan(r)) / Math.PI) / 2) * 2 ** z;
};
const tileLon = (x, z) => (x / 2 ** z) * 360 - 180;
const tileLat = (y, z) => (Math.atan(Math.sinh(Math.PI * (1 - (2 * y) / 2 ** z))) * 180) / Math.PI;

/** The tile URL template the server announced (`/app/tiles/{z}/{x}/{y}.png`), or null. */
export const tileTemplate = () => document.querySelector("meta[name=sipang-tiles]")?.content || null;

/** Tiles covering a north-up box with these edges, in its pixels: [{href, x, y, width, height}]. */
export function tileImages({ south, west, north, east, width, height }, template = tileTemplate()) {
  if (!template || !(north > south && east > west)) return [];
  const perPx = (east - west) / width;
  let zoom = Math.max(1, Math.min(MAX_ZOOM, Math.round(Math.log2(360 / (256 * perPx))) + 1));
  let x0, x1, y0, y1;
  for (;;) {
    [x0, x1] = [Math.floor(tileX(west, zoom)), Math.floor(tileX(east, zoom))];
    [y0, y1] = [Math.floor(tileY(north, zoom)), Math.floor(tileY(south, zoom))];
    if ((x1 - x0 + 1) * (y1 - y0 + 1) <= MAX_TILES || zoom === 1) break;
    zoom--;
  }
  const sx = width / (east - west);
  const sy = height / (north - south);
  const found = [];
  for (let ty = y0; ty <= y1; ty++) {
    for (let tx = x0; tx <= x1; tx++) {
      const [left, right, top, bottom] = [tileLon(tx, zoom), tileLon(tx + 1, zoom), tileLat(ty, zoom), tileLat(ty + 1, zoom)];
      found.push({
        href: template.replace("{z}", zoom).replace("{x}", tx).replace("{y}", ty),
        x: (left - west) * sx, y: (north - top) * sy, width: (right - left) * sx, height: (top - bottom) * sy,
      });
    }
  }
  return found;
}

/**
 * A north-up map of `points` ({latitude, longitude, kind: "todo"|"done"|"house"|"me", label})
 * drawn in an SVG from their own coordinates, scaled to fit, with a scale bar; over the
 * county's tiles where configured (a tile that does not load, offline, leaves the drawing).
 */
export function drawMap(points, { label }) {
  const placed = points.filter((p) => Number.isFinite(p.latitude) && Number.isFinite(p.longitude));
  const width = 320;
  const height = 240;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "map", role: "img", "aria-label": label });
  root.append(svg("rect", { x: 0, y: 0, width, height, class: "map-ground" }));
  if (!placed.length) return root;
  const lat0 = placed.reduce((s, p) => s + p.latitude, 0) / placed.length;
  const xy = (p) => [rad(p.longitude) * Math.cos(rad(lat0)) * EARTH_M, -rad(p.latitude) * EARTH_M];
  const coords = placed.map(xy);
  const xs = coords.map((c) => c[0]);
  const ys = coords.map((c) => c[1]);
  const spanM = Math.max(40, Math.max(...xs) - Math.min(...xs), (Math.max(...ys) - Math.min(...ys)) * (width / height));
  const scale = (width - 40) / spanM; // px per metre
  const cx = (Math.max(...xs) + Math.min(...xs)) / 2;
  const cy = (Math.max(...ys) + Math.min(...ys)) / 2;
  const at = ([x, y]) => [width / 2 + (x - cx) * scale, height / 2 + (y - cy) * scale];
  const lonAt = (px) => ((cx + (px - width / 2) / scale) / (Math.cos(rad(lat0)) * EARTH_M)) * (180 / Math.PI);
  const latAt = (py) => (-(cy + (py - height / 2) / scale) / EARTH_M) * (180 / Math.PI);
  const box = { south: latAt(height), west: lonAt(0), north: latAt(0), east: lonAt(width), width, height };
  for (const tile of tileImages(box)) {
    const image = svg("image", { ...tile, class: "map-tile", preserveAspectRatio: "none" });
    image.addEventListener("error", () => image.remove()); // offline and never seen: the drawing alone
    root.append(image);
  }
  placed.forEach((p, i) => {
    const [x, y] = at(coords[i]);
    const mark = p.kind === "house"
      ? svg("rect", { x: x - 6, y: y - 6, width: 12, height: 12, class: "map-house" })
      : svg("circle", { cx: x, cy: y, r: p.kind === "me" ? 7 : 6, class: `map-${p.kind}` });
    mark.append(svg("title", {}, p.label ?? ""));
    root.append(mark); // a picture: the lists beside it hold the links (targets big enough to tap)
  });
  const bar = [10, 20, 50, 100, 200, 500, 1000, 2000].find((m) => m * scale >= 50) ?? 5000;
  root.append(
    svg("line", { x1: 10, y1: height - 12, x2: 10 + bar * scale, y2: height - 12, class: "map-scale" }),
    svg("text", { x: 10, y: height - 18, class: "map-text" }, document.createTextNode(bar < 1000 ? t("geo.metres", { n: bar }) : t("geo.km", { n: bar / 1000 }))),
    svg("text", { x: width - 18, y: 18, class: "map-text" }, document.createTextNode(t("geo.north"))),
  );
  return root;
}

/** The map's legend, in words. */
export const mapLegend = (kinds) => h("ul", { class: "legend" },
  kinds.map((kind) => h("li", {}, h("span", { class: `swatch map-${kind}`, "aria-hidden": "true" }), t(`map.legend_${kind}`))));
