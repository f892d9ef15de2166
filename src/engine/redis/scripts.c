/* The Lua scripts of the Redis engine. Each runs atomically in Redis, so a
 * publish's offset, its stream entry, its idempotency key and its entry in
 * the notification stream exist all together or not at all. Keys and
 * arguments are listed above each script; redis_int.h has the key layout. */
#include "engine/redis/redis_int.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

/* Shared by the scripts that may create a channel: its meta {off, ep,
 * era}, made with the caller's fresh epoch when missing. A channel whose
 * meta is gone but whose stream remains (evicted, restored from another
 * source) continues its offsets under the new epoch, so no offset is
 * reused; an empty stream is dropped (its last id would refuse 0-1). A
 * channel last written in another era (P:era changes when a node finds that
 * Redis lost writes: ping_lua) gets a new epoch too: offsets after the lost
 * ones are handed out again, and clients must not take them for the ones
 * they saw. Returns off, ep, or nil when the tenant is at its quota. */
#define RD_LUA_META                                                                                \
    "local function get_era(erak, newep)\n"                                                        \
    "  local era = redis.call('GET', erak)\n"                                                      \
    "  if not era then era = newep; redis.call('SET', erak, era) end\n"                            \
    "  return era\n"                                                                               \
    "end\n"                                                                                        \
    "local function meta(mk, sk, tset, chan, newep, maxch, era)\n"                                 \
    "  local m = redis.call('HMGET', mk, 'off', 'ep', 'era')\n"                                    \
    "  if m[2] and m[3] == era then return tonumber(m[1]), m[2] end\n"                             \
    "  local off = tonumber(m[1] or '0')\n"                                                        \
    "  if not m[2] then\n"                                                                         \
    "    maxch = tonumber(maxch)\n"                                                                \
    "    if maxch > 0 and redis.call('SISMEMBER', tset, chan) == 0 and\n"                          \
    "       redis.call('SCARD', tset) >= maxch then return nil end\n"                              \
    "    local last = redis.call('XREVRANGE', sk, '+', '-', 'COUNT', 1)\n"                         \
    "    if last[1] then off = tonumber(string.sub(last[1][1], 3)) else redis.call('DEL', sk) "    \
    "end\n"                                                                                        \
    "    redis.call('SADD', tset, chan)\n"                                                         \
    "  end\n"                                                                                      \
    "  redis.call('HSET', mk, 'off', off, 'ep', newep, 'era', era)\n"                              \
    "  return off, newep\n"                                                                        \
    "end\n"                                                                                        \
    "local function trim_ttl(sk, now, ttl)\n"                                                      \
    "  ttl = tonumber(ttl)\n"                                                                      \
    "  if ttl <= 0 then return end\n"                                                              \
    "  local cut = tonumber(now) - ttl\n"                                                          \
    "  for i = 1, 1000 do\n"                                                                       \
    "    local f = redis.call('XRANGE', sk, '-', '+', 'COUNT', 1)\n"                               \
    "    if not f[1] or tonumber(f[1][2][2]) >= cut then return end\n"                             \
    "    redis.call('XDEL', sk, f[1][1])\n"                                                        \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "local function first(sk)\n"                                                                   \
    "  local f = redis.call('XRANGE', sk, '-', '+', 'COUNT', 1)\n"                                 \
    "  if f[1] then return tonumber(string.sub(f[1][1], 3)) end\n"                                 \
    "  return 0\n"                                                                                 \
    "end\n"

/* A batch of publishes, in order, each all or nothing.
 * KEYS 1 seq, 2 notify, 3 era, then per pub: meta, stream, idem, tset
 * ARGV 1 notify_maxlen, 2 dedup_ms, then per pub: newep, ts, history_size,
 *      ttl_ms, max_channels, channel, tenant, packed pub, '1' with idem
 * Returns one result per pub: {'ok', off, ep, seq}, {'dup', off, ep[, t, p]}
 * or {'limit'}. One call for the publishes of a loop iteration, and the
 * era and the counter read and written once per call: each redis.call
 * costs about a microsecond, as much as the commands themselves. */
static const char publish_lua[] = RD_LUA_META
    "local era, seq\n"
    "local function one(mk, sk, ik, tset, newep, ts, hs, ttl, maxch, chan, tenant, p, hasidem)\n"
    "  if hasidem == '1' then\n"
    "    local o = redis.call('GET', ik)\n"
    "    if o then\n"
    "      local ep = redis.call('HGET', mk, 'ep') or ''\n"
    "      local id = '0-' .. o\n"
    "      local e = redis.call('XRANGE', sk, id, id)\n"
    "      if e[1] then return {'dup', tonumber(o), ep, e[1][2][2], e[1][2][4]} end\n"
    "      return {'dup', tonumber(o), ep}\n"
    "    end\n"
    "  end\n"
    "  local off, ep = meta(mk, sk, tset, chan, newep, maxch, era)\n"
    "  if not off then return {'limit'} end\n"
    "  off = off + 1\n"
    "  redis.call('HSET', mk, 'off', off)\n"
    "  local id = string.format('0-%d', off)\n"
    "  if tonumber(hs) > 0 then\n"
    "    redis.call('XADD', sk, 'MAXLEN', hs, id, 't', ts, 'p', p)\n"
    "  else\n"
    "    redis.call('XADD', sk, id, 't', ts, 'p', p)\n"
    "  end\n"
    "  trim_ttl(sk, ts, ttl)\n"
    "  if hasidem == '1' then redis.call('SET', ik, off, 'PX', ARGV[2]) end\n"
    "  seq = seq + 1\n"
    "  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], string.format('0-%d', seq),\n"
    "    't', ts, 'o', off, 'e', ep, 'n', tenant, 'c', chan, 'p', p)\n"
    "  return {'ok', off, ep, seq}\n"
    "end\n"
    "local out = {}\n"
    "era = get_era(KEYS[3], ARGV[3])\n"
    "seq = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "for i = 0, (#KEYS - 3) / 4 - 1 do\n"
    "  local k, a = 3 + i * 4, 2 + i * 9\n"
    "  out[i + 1] = one(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], ARGV[a + 1],\n"
    "    ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7],\n"
    "    ARGV[a + 8], ARGV[a + 9])\n"
    "end\n"
    "redis.call('SET', KEYS[1], seq)\n"
    "return out\n";

/* A read's view of a channel. KEYS meta stream seq cursors tset era
 * ARGV 1 newep, 2 now, 3 ttl_ms, 4 max_channels, 5 channel, 6 user ('' none),
 *      7 '1' for every cursor
 * Returns {seq, head, ep, first, cursor[, {user, offset, ...}]} or
 * {'limit'}. */
static const char look_lua[] = RD_LUA_META
    "local off, ep = meta(KEYS[1], KEYS[2], KEYS[5], ARGV[5], ARGV[1], ARGV[4],\n"
    "  get_era(KEYS[6], ARGV[1]))\n"
    "if not off then return {'limit'} end\n"
    "trim_ttl(KEYS[2], ARGV[2], ARGV[3])\n"
    "local seq = tonumber(redis.call('GET', KEYS[3]) or '0')\n"
    "local cur = 0\n"
    "if ARGV[6] ~= '' then cur = tonumber(redis.call('HGET', KEYS[4], ARGV[6]) or '0') end\n"
    "local r = {seq, off, ep, first(KEYS[2]), cur}\n"
    "if ARGV[7] == '1' then r[6] = redis.call('HGETALL', KEYS[4]) end\n"
    "return r\n";

/* Moves a read cursor forward, never past head. KEYS meta stream seq cursors
 * ARGV 1 user, 2 offset read. Returns {seq, cursor, moved, head, ep, first}. */
static const char cursor_lua[] =
    RD_LUA_META "local m = redis.call('HMGET', KEYS[1], 'off', 'ep')\n"
                "local head = tonumber(m[1] or '0')\n"
                "local want = tonumber(ARGV[2])\n"
                "if want > head then want = head end\n"
                "local cur = tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0')\n"
                "local moved = 0\n"
                "if want > cur then\n"
                "  redis.call('HSET', KEYS[4], ARGV[1], want)\n"
                "  cur = want\n"
                "  moved = 1\n"
                "end\n"
                "local seq = tonumber(redis.call('GET', KEYS[3]) or '0')\n"
                "return {seq, cur, moved, head, m[2] or '', first(KEYS[2])}\n";

/* A node's ping through the notification stream. The counter at or below
 * what the node had read means Redis lost writes (restarted without them,
 * flushed, failed over to a replica behind it): a new era, so every channel
 * gets a new epoch at its next use. KEYS seq notify era
 * ARGV 1 node id, 2 notify_maxlen, 3 the last seq the node read, 4 new era.
 * Returns the ping's seq. */
static const char ping_lua[] =
    "local seq = redis.call('INCR', KEYS[1])\n"
    "if seq <= tonumber(ARGV[3]) then redis.call('SET', KEYS[3], ARGV[4]) end\n"
    "redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], string.format('0-%d', seq),\n"
    "  'k', 'ping', 'n', ARGV[1])\n"
    "return seq\n";

/* An ephemeral pub or signal for the other nodes. KEYS seq notify
 * ARGV 1 notify_maxlen, 2 node, 3 tenant, 4 channel, 5 user, 6 client,
 *      7 flags, 8 frame. Returns its seq. */
static const char relay_lua[] =
    "local seq = redis.call('INCR', KEYS[1])\n"
    "redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], string.format('0-%d', seq),\n"
    "  'k', 'x', 'n', ARGV[2], 'tn', ARGV[3], 'c', ARGV[4], 'u', ARGV[5], 'cl', ARGV[6],\n"
    "  'f', ARGV[7], 'fr', ARGV[8])\n"
    "return seq\n";

const char *rd_script_text(enum rd_script s)
{
    static const char *const texts[RD_SC_COUNT] = {publish_lua, look_lua, cursor_lua, ping_lua,
                                                   relay_lua};
    return texts[s];
}

/* EVALSHA needs the SHA1 of the text, which SCRIPT LOAD would also return:
 * computing it here lets every command be queued at once on connect. */
void rd_scripts_sha(char sha[RD_SC_COUNT][41])
{
    for (int s = 0; s < RD_SC_COUNT; s++) {
        unsigned char d[SHA_DIGEST_LENGTH];
        const char *t = rd_script_text((enum rd_script)s);
        SHA1((const unsigned char *)t, strlen(t), d);
        for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
            snprintf(&sha[s][i * 2], 3, "%02x", d[i]);
    }
}
