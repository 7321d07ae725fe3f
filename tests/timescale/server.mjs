// A real TimescaleDB (PGlite compiled to WASM) served over the PostgreSQL wire protocol,
// for the compatibility test in tests/menara/test_db.py. See README.md for the limits.
//
//   node server.mjs [port]        (or MENARA_TIMESCALE_PORT; default 0 = any free port)
//
// Prints "ready 127.0.0.1 <port>" once it accepts connections (connect with
// sslmode=disable and any user/password, see README.md); exits 0 on SIGTERM/SIGINT,
// 1 if it cannot start (e.g. the port is taken).
import { PGlite } from '@electric-sql/pglite'
import { timescaledb } from '@electric-sql/pglite/timescaledb'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'

const port = Number.parseInt(process.argv[2] ?? process.env.MENARA_TIMESCALE_PORT ?? '0', 10)
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`server.mjs: bad port ${process.argv[2] ?? process.env.MENARA_TIMESCALE_PORT}`)
  process.exit(2)
}

let db
let server
let stopping = false

async function stop(code) {
  if (stopping) return
  stopping = true
  // A stuck close must not keep the process (and a CI job) alive.
  setTimeout(() => process.exit(code), 3000).unref()
  try {
    if (server) await server.stop()
    if (db) await db.close()
  } catch (err) {
    console.error('server.mjs: error while stopping:', err)
  }
  process.exit(code)
}

process.on('SIGTERM', () => stop(0))
process.on('SIGINT', () => stop(0))

try {
  db = await PGlite.create('memory://', { extensions: { timescaledb } })
  // Default maxConnections is 1: a second client would be refused while the first is open.
  server = new PGLiteSocketServer({ db, port, host: '127.0.0.1', maxConnections: 20 })
  let bound = port
  server.addEventListener('listening', (e) => (bound = e.detail.port))
  // start() never rejects on a listen error (EADDRINUSE): it only dispatches 'error'.
  const failed = new Promise((_, reject) =>
    server.addEventListener('error', (e) => reject(e.detail)),
  )
  await Promise.race([server.start(), failed])
  server.addEventListener('error', (e) => console.error('server.mjs: socket server error:', e.detail))
  console.log(`ready 127.0.0.1 ${bound}`)
} catch (err) {
  console.error('server.mjs: could not start:', err)
  await stop(1)
}
