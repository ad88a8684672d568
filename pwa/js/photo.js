// A camera photo made small on the phone before it is stored and sent over 2G:
// the longest side at most 1280 px as JPEG quality 0.7, and a ≤ 160 px thumbnail to show.

/** Decode an image file (EXIF rotation applied); rejects with "unreadable" when it is none. */
async function decode(file) {
  if (typeof createImageBitmap === "function") {
    try {
      return await createImageBitmap(file, { imageOrientation: "from-image" });
    } catch { /* old browsers: try an <img> */ }
  }
  const url = URL.createObjectURL(file);
  try {
    const image = new Image();
    image.src = url;
    await image.decode();
    return image;
  } catch {
    throw new Error("unreadable");
  } finally {
    URL.revokeObjectURL(url);
  }
}

function draw(source, width, height, longest) {
  const scale = Math.min(1, longest / Math.max(width, height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(width * scale));
  canvas.height = Math.max(1, Math.round(height * scale));
  const context = canvas.getContext("2d");
  context.imageSmoothingQuality = "high";
  context.drawImage(source, 0, 0, canvas.width, canvas.height);
  return canvas;
}

/**
 * Resize a photo: {blob (image/jpeg, ≤ maxSide px), thumb (data URL, ≤ 160 px), width, height}.
 * Rejects with Error("unreadable") when the file is not an image the phone can open.
 */
export async function resizePhoto(file, { maxSide = 1280, quality = 0.7, thumbSide = 160 } = {}) {
  const source = await decode(file);
  const width = source.naturalWidth || source.width;
  const height = source.naturalHeight || source.height;
  if (!width || !height) throw new Error("unreadable");
  try {
    const canvas = draw(source, width, height, maxSide);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
    if (!blob) throw new Error("unreadable");
    const thumb = draw(canvas, canvas.width, canvas.height, thumbSide).toDataURL("image/jpeg", 0.6);
    return { blob, thumb, width: canvas.width, height: canvas.height };
  } finally {
    source.close?.();
  }
}
