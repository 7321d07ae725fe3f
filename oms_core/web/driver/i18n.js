// The page's words in English and Bahasa Indonesia, and how it writes times and money.
// The language follows the phone (id-* -> Bahasa) until the driver picks one.

const STRINGS = {
  en: {
    lang_name: "Bahasa Indonesia",
    refresh: "Refresh now",
    sign_out: "Sign out",
    sign_out_confirm: "{n} actions are not sent yet and will be lost. Sign out anyway?",
    online: "Online",
    offline: "Offline",
    sign_in_title: "Sign in",
    sign_in_intro: "Open the sign-in link the control room sent you, or paste the link, "
      + "code or token here.",
    sign_in_label: "Sign-in link, code or token",
    sign_in_button: "Sign in",
    signing_in: "Signing in…",
    sign_in_empty: "Paste the link, code or token first.",
    sign_in_ended: "Your sign-in has ended. Ask the control room for a new sign-in link.",
    not_driver: "This is not a driver's token. Ask the control room for your own link.",
    link_used: "This sign-in link is unknown, used or expired. Ask the control room for a "
      + "new one.",
    signed_out: "You are signed out.",
    server_error: "Menara could not answer just now. Try again in a minute.",
    hello: "Hello, {name}",
    loading: "Loading your trip…",
    no_trip: "No trip for you today.",
    no_trip_hint: "When the control room gives you a trip it shows here.",
    check_again: "Check again",
    offline_no_data: "No connection, and this phone has no copy of your trip yet. "
      + "Connect to the internet and try again.",
    stale: "No connection: showing your trip as of {time}.",
    state_planned: "Planned",
    state_dispatched: "Ready to load",
    state_in_progress: "On the road",
    state_completed: "Completed",
    state_cancelled: "Cancelled",
    progress: "{done} of {total} stops done",
    queue_one: "1 action waiting to send",
    queue_many: "{n} actions waiting to send",
    queue_sending: "Sending…",
    queue_parked: "{n} not accepted: fix below",
    all_sent: "All sent",
    load_title: "Load the van",
    load_skipped: "Not checked yet: tap to check",
    load_intro: "Count each line onto the van. Lower the number when something is missing.",
    of_qty: "of {qty}",
    loaded_button: "Loading checked",
    loaded_at: "Loaded at {time}",
    loaded_short: "{n} lines short",
    depart_title: "Leave the depot",
    depart_button: "Departed",
    departed_at: "Left the depot at {time}",
    depart_first: "Check the loading first, or depart anyway.",
    stop: "Stop {seq}",
    next: "Next",
    window: "Window {from}–{to}",
    eta: "ETA {time}",
    planned: "Planned {time}",
    instructions: "Instructions",
    call: "Call",
    navigate: "Navigate",
    maps: "Maps",
    arrived_button: "I have arrived",
    arrived_at: "Arrived {time}",
    unconfirmed: "No GPS from your van {from}–{to}, while you passed this stop. Delivered here? Tap “I have arrived” and record it.",
    order: "Order {tn}",
    collect: "Collect cash {amount}",
    prepaid: "Prepaid",
    deliver_button: "Record delivery",
    outcome_delivered: "Delivered",
    outcome_partially_delivered: "Partly delivered",
    outcome_failed: "Not delivered",
    waiting: "waiting to send",
    not_accepted: "Not accepted: {msg}",
    fix: "Fix",
    discard: "Discard",
    discard_confirm: "Discard this action? It will not be sent.",
    try_again: "Try again",
    return_title: "Back at the depot",
    cash_to_hand_in: "Cash to hand in",
    cash_hint: "Collected on this trip: {amount}",
    orders_left: "Record an outcome for every order first ({n} left).",
    return_button: "I am back at the depot",
    trip_done: "Trip completed. Thank you!",
    back_at: "Back at the depot at {time}",
    cash_handed_in: "Cash handed in: {amount}",
    epod_title: "Delivery {tn}",
    close: "Close",
    recipient: "Received by",
    recipient_ph: "Full name",
    items: "Items",
    ordered: "ordered {qty}",
    delivered_qty: "Delivered",
    damaged_qty: "Damaged",
    result: "Result",
    result_delivered: "Delivered in full",
    result_partially_delivered: "Partly delivered",
    result_failed: "Not delivered",
    cannot_deliver: "Could not deliver",
    deliver_all: "Deliver everything",
    reason: "Reason",
    reason_ph: "Choose a reason",
    notes: "Notes",
    notes_other: "Notes (required for Other)",
    signature: "Signature",
    signature_hint: "Recipient signs in the box",
    clear: "Clear",
    photos: "Photos",
    add_photo: "Add photo",
    remove: "Remove",
    photo_bad: "This file is not a picture the phone can read.",
    cod: "Cash collected",
    cod_due: "Due for the delivered items: {amount}",
    save: "Save delivery",
    save_failed: "Save: not delivered",
    sending: "Sending…",
    saved_offline: "Saved on the phone: it is sent when the connection returns.",
    fix_fields: "Check the marked fields.",
    err_recipient_required: "Write who received the goods.",
    err_signature_required: "The recipient must sign.",
    err_reason_required: "Choose a reason.",
    err_notes_required: "Write what happened.",
    err_cod_required: "Enter the cash collected (0 if none).",
    err_cod_invalid: "Enter an amount like 35.00.",
    err_too_many_photos: "At most 10 photos.",
    err_already_recorded: "This order already has an outcome.",
    err_not_found: "This is not on your trip any more. Refresh and ask the control room.",
    err_network: "No connection: saved on the phone, it is sent when the connection returns.",
    kind_loaded: "Loading check",
    kind_departed: "Departure",
    kind_arrived: "Arrival at stop {seq}",
    kind_delivery: "Delivery {tn}",
    kind_returned: "Back at depot",
  },
  id: {
    lang_name: "English",
    refresh: "Muat ulang",
    sign_out: "Keluar",
    sign_out_confirm: "{n} tindakan belum terkirim dan akan hilang. Tetap keluar?",
    online: "Terhubung",
    offline: "Luring",
    sign_in_title: "Masuk",
    sign_in_intro: "Buka tautan masuk dari ruang kontrol, atau tempel tautan, kode, atau "
      + "token di sini.",
    sign_in_label: "Tautan, kode, atau token masuk",
    sign_in_button: "Masuk",
    signing_in: "Sedang masuk…",
    sign_in_empty: "Tempel tautan, kode, atau token dulu.",
    sign_in_ended: "Sesi Anda telah berakhir. Minta tautan masuk baru ke ruang kontrol.",
    not_driver: "Ini bukan token pengemudi. Minta tautan Anda sendiri ke ruang kontrol.",
    link_used: "Tautan masuk ini tidak dikenal, sudah dipakai, atau kedaluwarsa. Minta "
      + "tautan baru ke ruang kontrol.",
    signed_out: "Anda sudah keluar.",
    server_error: "Menara tidak bisa menjawab saat ini. Coba lagi sebentar lagi.",
    hello: "Halo, {name}",
    loading: "Memuat perjalanan Anda…",
    no_trip: "Tidak ada perjalanan untuk Anda hari ini.",
    no_trip_hint: "Perjalanan dari ruang kontrol akan muncul di sini.",
    check_again: "Periksa lagi",
    offline_no_data: "Tidak ada koneksi, dan ponsel ini belum menyimpan perjalanan Anda. "
      + "Sambungkan ke internet lalu coba lagi.",
    stale: "Tidak ada koneksi: perjalanan Anda per pukul {time}.",
    state_planned: "Direncanakan",
    state_dispatched: "Siap dimuat",
    state_in_progress: "Dalam perjalanan",
    state_completed: "Selesai",
    state_cancelled: "Dibatalkan",
    progress: "{done} dari {total} pemberhentian selesai",
    queue_one: "1 tindakan menunggu dikirim",
    queue_many: "{n} tindakan menunggu dikirim",
    queue_sending: "Mengirim…",
    queue_parked: "{n} tidak diterima: perbaiki di bawah",
    all_sent: "Semua terkirim",
    load_title: "Muat kendaraan",
    load_skipped: "Belum dicek: ketuk untuk mengecek",
    load_intro: "Hitung setiap baris yang dimuat. Kurangi angkanya jika ada yang kurang.",
    of_qty: "dari {qty}",
    loaded_button: "Muatan sudah dicek",
    loaded_at: "Dimuat pukul {time}",
    loaded_short: "{n} baris kurang",
    depart_title: "Berangkat dari depo",
    depart_button: "Berangkat",
    departed_at: "Berangkat pukul {time}",
    depart_first: "Cek muatan dulu, atau tetap berangkat.",
    stop: "Pemberhentian {seq}",
    next: "Berikutnya",
    window: "Waktu kirim {from}–{to}",
    eta: "Perkiraan tiba {time}",
    planned: "Rencana {time}",
    instructions: "Instruksi",
    call: "Telepon",
    navigate: "Navigasi",
    maps: "Peta",
    arrived_button: "Saya sudah tiba",
    arrived_at: "Tiba {time}",
    unconfirmed: "GPS van tidak terkirim {from}–{to}, saat Anda melewati perhentian ini. Sudah diantar? Ketuk “Saya sudah tiba” lalu catat.",
    order: "Pesanan {tn}",
    collect: "Tagih tunai {amount}",
    prepaid: "Sudah dibayar",
    deliver_button: "Catat pengiriman",
    outcome_delivered: "Terkirim",
    outcome_partially_delivered: "Terkirim sebagian",
    outcome_failed: "Gagal dikirim",
    waiting: "menunggu dikirim",
    not_accepted: "Tidak diterima: {msg}",
    fix: "Perbaiki",
    discard: "Buang",
    discard_confirm: "Buang tindakan ini? Tindakan ini tidak akan dikirim.",
    try_again: "Coba lagi",
    return_title: "Kembali di depo",
    cash_to_hand_in: "Uang tunai yang diserahkan",
    cash_hint: "Diterima selama perjalanan ini: {amount}",
    orders_left: "Catat hasil setiap pesanan dulu (sisa {n}).",
    return_button: "Saya sudah kembali di depo",
    trip_done: "Perjalanan selesai. Terima kasih!",
    back_at: "Kembali di depo pukul {time}",
    cash_handed_in: "Uang tunai diserahkan: {amount}",
    epod_title: "Pengiriman {tn}",
    close: "Tutup",
    recipient: "Diterima oleh",
    recipient_ph: "Nama lengkap",
    items: "Barang",
    ordered: "dipesan {qty}",
    delivered_qty: "Diserahkan",
    damaged_qty: "Rusak",
    result: "Hasil",
    result_delivered: "Terkirim lengkap",
    result_partially_delivered: "Terkirim sebagian",
    result_failed: "Gagal dikirim",
    cannot_deliver: "Tidak bisa dikirim",
    deliver_all: "Kirim semua",
    reason: "Alasan",
    reason_ph: "Pilih alasan",
    notes: "Catatan",
    notes_other: "Catatan (wajib untuk Lainnya)",
    signature: "Tanda tangan",
    signature_hint: "Penerima tanda tangan di kotak",
    clear: "Hapus",
    photos: "Foto",
    add_photo: "Tambah foto",
    remove: "Hapus",
    photo_bad: "Berkas ini bukan gambar yang bisa dibaca ponsel.",
    cod: "Uang tunai diterima",
    cod_due: "Tagihan untuk barang yang diserahkan: {amount}",
    save: "Simpan pengiriman",
    save_failed: "Simpan: gagal dikirim",
    sending: "Mengirim…",
    saved_offline: "Disimpan di ponsel: dikirim saat koneksi kembali.",
    fix_fields: "Periksa kolom yang ditandai.",
    err_recipient_required: "Tulis nama penerima.",
    err_signature_required: "Penerima harus tanda tangan.",
    err_reason_required: "Pilih alasan.",
    err_notes_required: "Tulis apa yang terjadi.",
    err_cod_required: "Masukkan uang tunai yang diterima (0 jika tidak ada).",
    err_cod_invalid: "Masukkan jumlah seperti 35.00.",
    err_too_many_photos: "Maksimal 10 foto.",
    err_already_recorded: "Pesanan ini sudah punya hasil.",
    err_not_found: "Ini bukan lagi bagian dari perjalanan Anda. Muat ulang dan tanya ruang "
      + "kontrol.",
    err_network: "Tidak ada koneksi: disimpan di ponsel, dikirim saat koneksi kembali.",
    kind_loaded: "Cek muatan",
    kind_departed: "Keberangkatan",
    kind_arrived: "Tiba di pemberhentian {seq}",
    kind_delivery: "Pengiriman {tn}",
    kind_returned: "Kembali di depo",
  },
};

const KEY = "menara.driver.lang";
let current = pick();
let zone;

function pick() {
  const saved = localStorage.getItem(KEY);
  if (saved === "en" || saved === "id") return saved;
  return /^(id|in)\b/i.test(navigator.language || "") ? "id" : "en";
}

export function lang() {
  return current;
}

export function setLang(code) {
  current = code === "id" ? "id" : "en";
  localStorage.setItem(KEY, current);
  document.documentElement.lang = current;
}

/** The text for `key` with `{name}` placeholders filled from `vars`. */
export function t(key, vars = {}) {
  const text = STRINGS[current][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

/** A message for a server problem code, in the page's language when we know it. */
export function explain(code, message) {
  return `err_${code}` in STRINGS.en ? t(`err_${code}`) : message || code;
}

/** A refused request in a sentence: its detailed problems when it lists them. */
export function describe(error) {
  const details = (error.details || []).filter((d) => d.code && d.message);
  if (details.length) return details.map((d) => explain(d.code, d.message)).join(" ");
  return explain(error.code, error.message);
}

/** Show times in the depot's time zone (the trip's), falling back to the phone's. */
export function setZone(tz) {
  try {
    new Intl.DateTimeFormat("en", { timeZone: tz });
    zone = tz;
  } catch {
    zone = undefined;
  }
}

function locale() {
  return current === "id" ? "id-ID" : "en-GB";
}

export function time(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return new Intl.DateTimeFormat(locale(), {
    hour: "2-digit", minute: "2-digit", timeZone: zone,
  }).format(d).replace(".", ":");
}

export function day(isoDate) {
  if (!isoDate) return "";
  const d = new Date(`${isoDate}T12:00:00Z`);
  return new Intl.DateTimeFormat(locale(), {
    weekday: "short", day: "numeric", month: "short", timeZone: "UTC",
  }).format(d);
}

/** Money as the API writes it ("35.00") shown with the locale's separators. */
export function money(text) {
  const n = Number(text ?? 0);
  return new Intl.NumberFormat(locale(), {
    minimumFractionDigits: 2, maximumFractionDigits: 2,
  }).format(n);
}

document.documentElement.lang = current;
