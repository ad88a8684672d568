// Reading the codes Sipang prints: door plates (/H/), tree tags (/T/) and the kit's
// enrolment QR (/E/), by camera (BarcodeDetector, else the jsQR decoder) or typed by hand.
// The check characters are verified here too, so a typo is caught without the network.

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"; // Crockford base32, as village_kits/codes.py
const HOUSEHOLD = /^(\d{12})-(\d{4})-([0-9A-Z]{2})$/;
const TAG = /^(\d{12})-T(\d{5})-([0-9A-Z])$/;

/** The symbol that makes Σ (position + 1) × value ≡ 0 (mod 31): codes.checksum_symbol. */
function checksumSymbol(body) {
  const values = [...body.replace(/-/g, "")].map((char) => ALPHABET.indexOf(char));
  const total = values.reduce((sum, value, position) => sum + (position + 1) * value, 0);
  const weight = values.length + 1;
  let inverse = 1;
  while ((weight * inverse) % 31 !== 1) inverse += 1;
  return ALPHABET[(((-total * inverse) % 31) + 31) % 31];
}

/** Upper-case, drop spaces, and put the dashes back into a code typed without them. */
function normalise(text) {
  const bare = text.toUpperCase().replace(/[^0-9A-Z]/g, "");
  if (/^\d{16}[0-9A-Z]{2}$/.test(bare)) return `${bare.slice(0, 12)}-${bare.slice(12, 16)}-${bare.slice(16)}`;
  if (/^\d{12}T\d{5}[0-9A-Z]$/.test(bare)) return `${bare.slice(0, 12)}-${bare.slice(12, 18)}-${bare.slice(18)}`;
  return text.trim().toUpperCase();
}

/** A tag as printed under its QR ("T00017-J", the village left off) in full, for `village`. */
function printedTag(text, village) {
  const bare = text.toUpperCase().replace(/[^0-9A-Z]/g, "");
  const match = village && bare.match(/^T(\d{5})([0-9A-Z])$/);
  return match ? `${village}-T${match[1]}-${match[2]}` : text;
}

/**
 * What a scanned or typed text is: {type: household|tag|enrol|unknown, value, valid, village}.
 * With `village` (the phone's), a tag typed as printed ("T00017-J") is read as that village's.
 */
export function parseCode(text, village = null) {
  const raw = String(text || "").trim();
  const url = raw.match(/\/([HTE])\/([0-9A-Za-z-]+)\/?$/i);
  if (url && url[1].toUpperCase() === "E") return { type: "enrol", value: url[2].toUpperCase(), valid: true };
  const value = normalise(url ? url[2] : printedTag(raw, village));
  let match = value.match(HOUSEHOLD);
  if (match) {
    const valid = Number(match[2]) >= 1 && match[3][0] !== "Z"
      && checksumSymbol(`${match[1]}-${match[2]}-${match[3][0]}`) === match[3][1];
    return { type: "household", value, valid, village: match[1] };
  }
  match = value.match(TAG);
  if (match) {
    return { type: "tag", value, valid: checksumSymbol(`${match[1]}-T${match[2]}`) === match[3], village: match[1] };
  }
  if (/^[0-9A-Z]{4}-?[0-9A-Z]{4}-?[0-9A-Z]{4}$/.test(value)) return { type: "enrol", value, valid: true };
  return { type: "unknown", value, valid: false };
}

let jsqrLoading = null;

function loadJsqr() {
  jsqrLoading ??= new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = "/app/vendor/jsqr.js";
    script.onload = () => (window.jsQR ? resolve(window.jsQR) : reject(new Error("no_decoder")));
    script.onerror = () => { jsqrLoading = null; reject(new Error("no_decoder")); };
    document.head.append(script);
  });
  return jsqrLoading;
}

async function makeDecoder() {
  if ("BarcodeDetector" in window) {
    try {
      if ((await window.BarcodeDetector.getSupportedFormats()).includes("qr_code")) {
        const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
        return async (video) => (await detector.detect(video))[0]?.rawValue || null;
      }
    } catch { /* fall through to jsQR */ }
  }
  const jsQR = await loadJsqr();
  const canvas = document.createElement("canvas");
  const context = canvas.getContext("2d", { willReadFrequently: true });
  return async (video) => {
    const scale = Math.min(1, 640 / Math.max(video.videoWidth, video.videoHeight));
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    if (!canvas.width || !canvas.height) return null;
    context.drawImage(video, 0, 0, canvas.width, canvas.height);
    const image = context.getImageData(0, 0, canvas.width, canvas.height);
    return jsQR(image.data, image.width, image.height, { inversionAttempts: "attemptBoth" })?.data || null;
  };
}

function scanError(reason) {
  const error = new Error(reason);
  error.reason = reason; // denied | unavailable | no_decoder
  return error;
}

/**
 * Show the back camera in `video` and call `onText(text)` for each QR read (the same text at
 * most once every 2 s) until `stop()`. Rejects with `.reason` denied, unavailable or no_decoder.
 */
export async function startScanner(video, onText) {
  if (!navigator.mediaDevices?.getUserMedia) throw scanError("unavailable");
  let decode;
  try {
    decode = await makeDecoder();
  } catch {
    throw scanError("no_decoder");
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
  } catch (error) {
    throw scanError(["NotAllowedError", "SecurityError"].includes(error.name) ? "denied" : "unavailable");
  }
  let running = true;
  let last = { text: null, at: 0 };
  const stop = () => {
    running = false;
    stream.getTracks().forEach((track) => track.stop());
    video.srcObject = null;
  };
  video.muted = true;
  video.setAttribute("playsinline", "");
  video.srcObject = stream;
  await video.play().catch(() => {});
  const tick = async () => {
    if (!running) return;
    let text = null;
    if (video.readyState >= 2) {
      try { text = await decode(video); } catch { text = null; }
    }
    const now = Date.now();
    if (text && running && (text !== last.text || now - last.at > 2000)) {
      last = { text, at: now };
      onText(text);
    }
    if (running) setTimeout(tick, 200);
  };
  tick();
  return { stop };
}
