/**
 * The Lua scripts of the shared tier, each one round trip: a lookup that takes the single-flight
 * lock on a miss, a waiter's peek once subscribed, and a lock holder's fill (value, message to the
 * waiters and lock release in one command).
 */
import type { Redis } from 'ioredis';

// One round trip for a miss: read the value, else take the lock (ARGV[1] = token, '' = no lock).
const LOOKUP_LUA = `
local v = redis.call('GET', KEYS[1])
if v then return {1, v} end
if ARGV[1] == '' then return {0} end
if redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2], 'NX') then return {2} end
return {3}`;
// A waiter, once subscribed: the value, else whether the lock is still held.
const PEEK_LUA = `
local v = redis.call('GET', KEYS[1])
if v then return {1, v} end
return {redis.call('EXISTS', KEYS[2]) == 1 and 3 or 0}`;
// A holder's fill in one command: the value with its TTL, the message to the waiters, and the
// lock released only if it is still this holder's (it may have expired and been taken since).
// KEYS[1] = data key, KEYS[2] = lock; ARGV = value ('' to store nothing), TTL ms, channel, token.
const FILL_LUA = `
if ARGV[1] ~= '' then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
redis.call('PUBLISH', ARGV[3], ARGV[1])
if redis.call('GET', KEYS[2]) == ARGV[4] then redis.call('DEL', KEYS[2]) end
return 1`;

/**
 * A client with the scripts defined. Replies: lookup and peek `[1, value]` a hit, `[0]` nothing
 * (no lock asked for, or none held), `[2]` the lock is now the caller's, `[3]` another holds it.
 */
export type ScriptClient = Redis & {
  ecrLookupBuffer(key: string, lock: string, token: string, lockMs: number): Promise<[number, Buffer?]>;
  ecrPeekBuffer(key: string, lock: string): Promise<[number, Buffer?]>;
  ecrFill(key: string, lock: string, value: Buffer | string, ttlMs: number, channel: string, token: string): Promise<number>;
};

export function defineScripts(client: Redis): ScriptClient {
  client.defineCommand('ecrLookup', { numberOfKeys: 2, lua: LOOKUP_LUA });
  client.defineCommand('ecrPeek', { numberOfKeys: 2, lua: PEEK_LUA });
  client.defineCommand('ecrFill', { numberOfKeys: 2, lua: FILL_LUA });
  return client as ScriptClient;
}
