// Photos for the proof: a phone camera's 12-megapixel picture is cut to at most 1600 px
// on its long side as JPEG before it is stored or sent, so a slow connection still
// carries it and the outbox stays small.

const MAX_SIDE = 1600;
const QUALITY = 0.85;

/** A JPEG Blob of `file` at most MAX_SIDE px wide and high; rejects when unreadable. */
export async function downscale(file) {
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";  // transparent PNGs become white, not black, as JPEG
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", QUALITY));
  if (!blob) throw new Error("the picture could not be encoded");
  return blob;
}
