/*
 * The Node.js baseline of tests/bench: what a user would otherwise deploy for MOCO
 * webhooks. Fastify (HTTPS, one process) + pg (Pool of 16): verify X-Moco-Signature
 * (HMAC-SHA256 of the raw body), INSERT one row into a table shaped like rosterd's
 * events (same unique dedup key), and answer 202 only after the commit.
 * Config (incl. the webhook key) comes from the JSON file named by BENCH_NODE_CONFIG,
 * never from argv. Prints "ready" on stdout once listening.
 */
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const Fastify = require('fastify');
const { Pool } = require('pg');

const cfg = JSON.parse(fs.readFileSync(process.env.BENCH_NODE_CONFIG, 'utf8'));
const keys = cfg.moco_keys.map((k) => Buffer.from(k, 'ascii'));
const pool = new Pool({ connectionString: cfg.database_url, max: cfg.pool_size || 16 });
const SECRET_HEADERS = new Set(['authorization', 'cookie', 'x-moco-signature']);

const INSERT = {
  name: 'ins_event',
  text:
    "INSERT INTO events (connection_id, source, event_type, subject, auth, dedup_key, headers, body)" +
    " VALUES ($1, 'moco', $2, $3, 'hmac', $4, $5, $6)" +
    ' ON CONFLICT (connection_id, dedup_key) DO NOTHING RETURNING id',
};
const LOOKUP = {
  name: 'get_event',
  text: 'SELECT id FROM events WHERE connection_id = $1 AND dedup_key = $2',
};

function signatureOk(sig, body) {
  if (typeof sig !== 'string' || !/^[0-9a-f]{64}$/.test(sig)) return false;
  const given = Buffer.from(sig, 'hex');
  let ok = false;
  for (const k of keys) {
    const mac = crypto.createHmac('sha256', k).update(body).digest();
    if (crypto.timingSafeEqual(mac, given)) ok = true;
  }
  return ok;
}

function storedHeaders(h) {
  const out = {};
  for (const [k, v] of Object.entries(h)) if (!SECRET_HEADERS.has(k)) out[k] = String(v);
  return JSON.stringify(out);
}

const app = Fastify({
  logger: false,
  bodyLimit: 1048576,
  https: { cert: fs.readFileSync(cfg.cert), key: fs.readFileSync(cfg.key) },
  keepAliveTimeout: 60000,
});
app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) =>
  done(null, body));

app.post('/webhooks/:conn/moco', async (req, reply) => {
  if (req.params.conn !== cfg.name) return reply.code(404).send({ error: 'not found' });
  const body = req.body;
  if (!Buffer.isBuffer(body)) return reply.code(400).send({ error: 'body is not JSON' });
  if (!signatureOk(req.headers['x-moco-signature'], body))
    return reply.code(401).send({ error: 'unauthorized' });
  const target = req.headers['x-moco-target'];
  const event = req.headers['x-moco-event'];
  if (!target || !event)
    return reply.code(400).send({ error: 'X-Moco-Target and X-Moco-Event headers are required' });
  let doc;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (e) {
    return reply.code(400).send({ error: 'body is not valid JSON' });
  }
  const subj = target === 'User' ? doc.id : doc.user && doc.user.id;
  const dkey = crypto.createHash('sha256').update(target).update('\n').update(event)
    .update('\n').update(body).digest();
  const res = await pool.query(INSERT, [cfg.connection_id, `${target}.${event}`,
    subj === undefined || subj === null ? null : String(subj), dkey,
    storedHeaders(req.headers), body.toString('utf8')]);
  if (res.rowCount === 1)
    return reply.code(202).send({ event_id: String(res.rows[0].id), status: 'queued' });
  const old = await pool.query(LOOKUP, [cfg.connection_id, dkey]);
  return reply.code(200).send({ event_id: String(old.rows[0].id), status: 'duplicate' });
});

async function main() {
  await app.listen({ host: '127.0.0.1', port: cfg.port });
  process.stdout.write('ready\n');
}

for (const sig of ['SIGTERM', 'SIGINT'])
  process.on(sig, () => {
    app.close().then(() => pool.end()).then(() => process.exit(0), () => process.exit(1));
  });

main().catch((e) => {
  process.stderr.write(`node_receiver: ${e.message}\n`);
  process.exit(1);
});
