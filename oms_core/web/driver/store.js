// The phone's durable outbox: IndexedDB keeps the driver's actions (with the signature
// and photo Blobs) across reloads, crashes and a dead battery until the server has them.

const DB_NAME = "menara-driver";
const STORE = "actions";
let opening;

function db() {
  opening ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => {
      req.result.createObjectStore(STORE, { keyPath: "id", autoIncrement: true });
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  return opening;
}

async function tx(mode, work) {
  const conn = await db();
  return new Promise((resolve, reject) => {
    const t = conn.transaction(STORE, mode);
    const req = work(t.objectStore(STORE));
    t.oncomplete = () => resolve(req?.result);
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error);
  });
}

/** Every queued action, oldest first (ids grow with each tap). */
export function all() {
  return tx("readonly", (s) => s.getAll());
}

export function get(id) {
  return tx("readonly", (s) => s.get(id));
}

/** Store a new action; resolves its id. */
export function add(record) {
  return tx("readwrite", (s) => s.add(record));
}

export function put(record) {
  return tx("readwrite", (s) => s.put(record));
}

export function remove(id) {
  return tx("readwrite", (s) => s.delete(id));
}

export function clear() {
  return tx("readwrite", (s) => s.clear());
}
