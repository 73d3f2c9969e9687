// npm etcd3 1.1.2 against one server: node v3client.js http://127.0.0.1:PORT
// Driven by tests/test_v3_clients.py. It prints one JSON object with what it saw; the
// Python test asserts on it. Any exception exits 1 with the error on stderr.
'use strict';

const assert = require('assert');
const { Etcd3, EtcdLockFailedError, EtcdLeaseInvalidError } = require('etcd3');

const endpoint = process.argv[2];
if (!endpoint) {
  console.error('usage: node v3client.js http://127.0.0.1:PORT');
  process.exit(2);
}

function timeout(ms, what) {
  return new Promise((_, reject) => setTimeout(() => reject(new Error('timed out: ' + what)), ms));
}

function within(ms, what, promise) {
  return Promise.race([promise, timeout(ms, what)]);
}

async function main() {
  const client = new Etcd3({ hosts: endpoint, dialTimeout: 5000 });
  const out = {};
  try {
    // put / get / delete
    const p1 = await client.put('js/a').value('1');
    const p2 = await client.put('js/b').value('2');
    out.putRevisions = [Number(p1.header.revision), Number(p2.header.revision)];
    out.getA = await client.get('js/a').string();
    out.missing = await client.get('js/none').string();
    out.prefix = await client.getAll().prefix('js/').strings();
    out.keysOnly = await client.getAll().prefix('js/').keys();
    out.count = await client.getAll().prefix('js/').count();
    const again = await client.put('js/a').value('11').getPrevious();
    out.previous = again ? again.value.toString() : null;
    const meta = await client.get('js/a').exec();
    out.metaA = {
      version: Number(meta.kvs[0].version),
      create: Number(meta.kvs[0].create_revision),
      mod: Number(meta.kvs[0].mod_revision),
      headerRevision: Number(meta.header.revision),
    };
    const del = await client.delete().key('js/b');
    out.deleted = Number(del.deleted);
    out.deletedMissing = Number((await client.delete().key('js/none')).deleted);
    out.afterDelete = await client.getAll().prefix('js/').strings();

    // txn: if().then().else()
    const t1 = await client.if('js/a', 'Value', '==', '11')
      .then(client.put('js/a').value('then'))
      .else(client.put('js/a').value('else'))
      .commit();
    out.txn1 = { succeeded: !!t1.succeeded, value: await client.get('js/a').string() };
    const t2 = await client.if('js/a', 'Value', '==', 'nope')
      .and('js/a', 'Version', '>', 0)
      .then(client.put('js/a').value('then2'))
      .else(client.put('js/c').value('else2'), client.get('js/a'))
      .commit();
    out.txn2 = {
      succeeded: !!t2.succeeded,
      a: await client.get('js/a').string(),
      c: await client.get('js/c').string(),
      responses: t2.responses.map(r => Object.keys(r).filter(k => r[k] && k.startsWith('response_'))[0] || r.response),
    };
    const t3 = await client.if('js/missing', 'Create', '==', 0)
      .then(client.put('js/created').value('yes'))
      .commit();
    out.txn3 = { succeeded: !!t3.succeeded, created: await client.get('js/created').string() };

    // lease with keepalive
    const lease = client.lease(3);
    const leaseId = await lease.grant();
    out.leaseId = String(leaseId);
    await lease.put('js/leased').value('x');
    const keepalives = [];
    lease.on('keepaliveSucceeded', res => keepalives.push(Number(res.TTL)));
    const lost = [];
    lease.on('lost', err => lost.push(String(err)));
    // the library sends a keepalive every TTL/3 s: after 4.5 s (past the 3 s TTL, so only
    // the keepalives kept it) the key must still be there
    await new Promise(r => setTimeout(r, 4500));
    out.keepalives = keepalives;
    out.leasedAfterTTL = await client.get('js/leased').string();
    out.lost = lost;
    const once = await lease.keepaliveOnce();
    out.keepaliveOnceTTL = Number(once.TTL);
    await lease.revoke();
    out.leasedAfterRevoke = await client.get('js/leased').string();
    // a lease that is unknown to the server: its error is matched by message text
    const ghost = client.lease(30);
    await ghost.grant();
    await ghost.revoke();
    try {
      await ghost.put('js/ghost').value('x');
      out.ghostPut = 'no error';
    } catch (e) {
      out.ghostPut = (e instanceof EtcdLeaseInvalidError ? 'EtcdLeaseInvalidError' : e.constructor.name) + ': ' + e.message;
    }

    // watcher
    const watcher = await within(5000, 'watch create', client.watch().key('js/w').withPreviousKV().create());
    const events = [];
    const got = new Promise(resolve => {
      watcher.on('put', (kv, prev) => {
        events.push(['put', kv.value.toString(), prev ? prev.value.toString() : null, Number(kv.mod_revision)]);
        if (events.length === 3) resolve();
      });
      watcher.on('delete', (kv, prev) => {
        events.push(['delete', kv.key.toString(), prev ? prev.value.toString() : null, Number(kv.mod_revision)]);
        if (events.length === 3) resolve();
      });
    });
    await client.put('js/w').value('w1');
    await client.put('js/w').value('w2');
    await client.delete().key('js/w');
    await within(5000, 'watch events', got);
    out.watchEvents = events;
    await watcher.cancel();
    await client.put('js/w').value('after cancel');
    await new Promise(r => setTimeout(r, 300));
    out.watchEventsAfterCancel = events.length;

    // prefix watcher from a past revision replays history
    const start = out.putRevisions[0];
    const pw = await within(5000, 'prefix watch', client.watch().prefix('js/').startRevision(String(start)).create());
    const replay = [];
    const replayed = new Promise(resolve => {
      pw.on('data', res => {
        for (const ev of res.events) {
          replay.push(ev.type + ' ' + ev.kv.key.toString());
          if (ev.kv.key.toString() === 'js/end') resolve();
        }
      });
    });
    await client.put('js/end').value('end');
    await within(5000, 'replayed events', replayed);
    out.replay = replay;
    await pw.cancel();

    // locks: two on one name exclude each other
    const lock1 = client.lock('js-lock').ttl(10);
    await lock1.acquire();
    const lockKeys = await client.getAll().prefix('js-lock').keys();
    out.lockKeys = lockKeys;
    const lock2 = client.lock('js-lock').ttl(10);
    try {
      await lock2.acquire();
      out.secondLock = 'acquired';
    } catch (e) {
      out.secondLock = e instanceof EtcdLockFailedError ? 'EtcdLockFailedError' : String(e);
    }
    await lock1.release();
    const lock3 = client.lock('js-lock').ttl(10);
    await lock3.acquire();
    out.thirdLock = 'acquired';
    const result = await client.lock('js-lock2').ttl(10).do(async () => 'inside');
    out.lockDo = result;
    await lock3.release();
    out.lockKeysAfter = await client.getAll().prefix('js-lock').keys();
  } finally {
    client.close();
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

within(60000, 'the whole script', main()).then(
  () => process.exit(0),
  err => {
    console.error(err && err.stack ? err.stack : String(err));
    process.exit(1);
  });
