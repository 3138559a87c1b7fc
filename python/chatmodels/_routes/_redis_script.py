"""The Lua script behind `RedisState`: one call is one decision (see `_redis`)."""

SCRIPT = r"""
-- chatmodels route state: one call of this script is one decision (see chatmodels._routes._redis).
-- Per deployment, 5 keys: s (hash: circuit, counters, now), l (zset ticket -> admission time),
-- t (hash ticket -> tokens), c (zset ticket -> lease expiry), o (list of "time:failed").
-- Times are the server's TIME, clamped so that a deployment's time never runs backwards.
-- ARGV[1] op, ARGV[2] ttl (seconds, every key touched gets it). Every op returns the server
-- time it read (the last item), for the tests that compare with the in-process state.
local WINDOW = 60
local op = ARGV[1]
local ttl = tonumber(ARGV[2])
local t0 = redis.call('TIME')
local clock = tonumber(t0[1]) + tonumber(t0[2]) / 1000000

local function fmt(x)
  return string.format('%.17g', x)
end

local function keys_of(i)
  local b = (i - 1) * 5
  return KEYS[b + 1], KEYS[b + 2], KEYS[b + 3], KEYS[b + 4], KEYS[b + 5]
end

local function touch(s, l, t, c, o)
  redis.call('EXPIRE', s, ttl)
  redis.call('EXPIRE', l, ttl)
  redis.call('EXPIRE', t, ttl)
  redis.call('EXPIRE', c, ttl)
  redis.call('EXPIRE', o, ttl)
end

local function clamp(s)
  local seen = tonumber(redis.call('HGET', s, 'now'))
  if seen and clock < seen then
    return seen
  end
  redis.call('HSET', s, 'now', fmt(clock))
  return clock
end

-- Drop the log entries out of the window (admitted at t with t + WINDOW <= now). Only the
-- entries about to go are read (a margin over the cut, then the exact test).
local function expire(s, l, t, now)
  local freed = 0
  local cut = fmt(now - WINDOW + 0.001)
  while true do
    local head = redis.call('ZRANGEBYSCORE', l, '-inf', cut, 'WITHSCORES', 'LIMIT', 0, 100)
    local gone = {}
    local more = #head == 200
    for i = 1, #head, 2 do
      if tonumber(head[i + 1]) + WINDOW <= now then
        gone[#gone + 1] = head[i]
      else
        more = false
        break
      end
    end
    if #gone > 0 then
      local toks = redis.call('HMGET', t, unpack(gone))
      for i = 1, #gone do
        freed = freed + (tonumber(toks[i]) or 0)
      end
      redis.call('ZREM', l, unpack(gone))
      redis.call('HDEL', t, unpack(gone))
    end
    if not more then
      break
    end
  end
  if freed ~= 0 then
    redis.call('HINCRBY', s, 'tokens', -freed)
  end
end

-- {reason, wait} for the rate limits (0 = room).
local function rate_wait(s, l, t, now, est, rpm, tpm)
  local reason, wait = 0, nil
  local n = redis.call('ZCARD', l)
  if rpm > 0 and n >= rpm then
    local at = redis.call('ZRANGE', l, n - rpm, n - rpm, 'WITHSCORES')
    reason, wait = 4, tonumber(at[2]) + WINDOW - now
  end
  if tpm > 0 then
    local tokens = tonumber(redis.call('HGET', s, 'tokens')) or 0
    local need = tokens + est - tpm
    if need > 0 then
      local tpm_wait = math.huge
      if est <= tpm then
        local all = redis.call('ZRANGE', l, 0, -1, 'WITHSCORES')
        local freed = 0
        for i = 1, #all, 2 do
          freed = freed + (tonumber(redis.call('HGET', t, all[i])) or 0)
          if freed >= need then
            tpm_wait = tonumber(all[i + 1]) + WINDOW - now
            break
          end
        end
      end
      if reason == 0 then
        reason, wait = 5, tpm_wait
      else
        wait = math.max(wait or 0, tpm_wait)
      end
    end
  end
  return reason, wait
end

-- One candidate: returns reason, ticket, wait (string or false), trial (0/1), now, in_flight.
local function try_acquire(i, est, rpm, tpm, cap, lease)
  local s, l, t, c, o = keys_of(i)
  local now = clamp(s)
  redis.call('ZREMRANGEBYSCORE', c, '-inf', fmt(now))
  local st = redis.call('HMGET', s, 'state', 'open_until', 'trial')
  local state = tonumber(st[1]) or 0
  local trial = 0
  if state ~= 0 then
    if state == 1 then
      local open_until = tonumber(st[2])
      if now < open_until then
        return 1, -1, fmt(open_until - now), 0, now
      end
      redis.call('HSET', s, 'state', 2)
    end
    if st[3] then
      if redis.call('ZSCORE', c, st[3]) then
        return 2, -1, false, 0, now
      end
      redis.call('HDEL', s, 'trial') -- its holder's lease ran out
    end
    trial = 1
  end
  local in_flight = redis.call('ZCARD', c)
  if cap > 0 and in_flight >= cap then
    return 3, -1, false, 0, now
  end
  if rpm > 0 or tpm > 0 then
    expire(s, l, t, now)
    local reason, wait = rate_wait(s, l, t, now, est, rpm, tpm)
    if reason ~= 0 then
      return reason, -1, fmt(wait), 0, now
    end
  end
  local ticket = redis.call('HINCRBY', s, 'next', 1) - 1
  if rpm > 0 or tpm > 0 then
    redis.call('ZADD', l, fmt(now), ticket)
    redis.call('HSET', t, ticket, est)
    redis.call('HINCRBY', s, 'tokens', est)
  end
  redis.call('ZADD', c, fmt(now + lease), ticket)
  if trial == 1 then
    redis.call('HSET', s, 'trial', ticket)
  end
  touch(s, l, t, c, o)
  return 0, ticket, false, trial, now
end

local function open(s, o, now, duration)
  redis.call('HSET', s, 'state', 1, 'open_until', fmt(now + duration), 'streak', 0, 'failed', 0)
  redis.call('DEL', o)
end

if op == 'acquire' then
  -- ARGV: op, ttl, est, lease, then per candidate: index, rpm, tpm, cap (0 = none).
  local est = tonumber(ARGV[3])
  local lease = tonumber(ARGV[4])
  local out = {}
  local first, best = nil, nil
  local n = (#ARGV - 4) / 4
  for k = 1, n do
    local a = 4 + (k - 1) * 4
    local reason, ticket, wait, trial, now = try_acquire(
      k, est, tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), lease)
    local s, l, t, c = keys_of(k)
    local answer = {reason, tonumber(ARGV[a + 1]), ticket, wait, trial, fmt(now)}
    out[#out + 1] = ARGV[a + 1]
    out[#out + 1] = redis.call('ZCARD', c)
    out[#out + 1] = redis.call('HGET', s, 'lat') or ''
    if reason == 0 then
      return {answer, out, fmt(clock)}
    end
    if first == nil then
      first = answer
    end
    if reason >= 4 and (best == nil or tonumber(wait) < tonumber(best[4])) then
      best = answer
    end
  end
  return {best or first, out, fmt(clock)}
end

local s, l, t, c, o = keys_of(1)
local now = clamp(s)

if op == 'release' then
  -- ARGV: op, ttl, ticket, outcome, actual ('' = keep), latency (''), retry_after (''), u,
  -- then the breaker (empty = none): failures, window, rate, min_calls, cooldown,
  -- max_cooldown, jitter.
  local ticket = tonumber(ARGV[3])
  local outcome = tonumber(ARGV[4])
  local actual = tonumber(ARGV[5])
  local latency = tonumber(ARGV[6])
  local retry_after = tonumber(ARGV[7])
  local u = tonumber(ARGV[8])
  redis.call('ZREM', c, ticket)
  expire(s, l, t, now)
  if actual then
    local old = tonumber(redis.call('HGET', t, ticket))
    if old then
      redis.call('HSET', t, ticket, actual)
      redis.call('HINCRBY', s, 'tokens', actual - old)
    end
  end
  if outcome == 0 and latency then
    local avg = tonumber(redis.call('HGET', s, 'lat'))
    if avg then
      avg = avg + 0.25 * (latency - avg)
    else
      avg = latency
    end
    redis.call('HSET', s, 'lat', fmt(avg))
  end
  touch(s, l, t, c, o)
  if #ARGV < 15 then
    return fmt(clock)
  end
  local failures, window, rate = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
  local min_calls, cooldown = tonumber(ARGV[12]), tonumber(ARGV[13])
  local max_cooldown, jitter = tonumber(ARGV[14]), tonumber(ARGV[15])
  local st = redis.call('HMGET', s, 'trial', 'state', 'level', 'closed_since', 'next')
  if st[1] and tonumber(st[1]) == ticket then
    redis.call('HDEL', s, 'trial')
    if outcome == 0 then
      redis.call('HSET', s, 'state', 0, 'level', 0, 'closed_since', tonumber(st[5]) or 0)
    elseif outcome == 1 then
      local level = math.min((tonumber(st[3]) or 0) + 1, 64)
      redis.call('HSET', s, 'level', level)
      if not retry_after then
        retry_after = math.min(cooldown * 2 ^ level, max_cooldown) * (1 - jitter * u)
      end
      open(s, o, now, retry_after)
    end
    return fmt(clock)
  end
  if outcome == 2 or (tonumber(st[2]) or 0) ~= 0 or ticket < (tonumber(st[4]) or 0) then
    return fmt(clock)
  end
  local failed = outcome == 1
  redis.call('RPUSH', o, fmt(now) .. (failed and ':1' or ':0'))
  local nfailed, streak
  if failed then
    nfailed = redis.call('HINCRBY', s, 'failed', 1)
    streak = redis.call('HINCRBY', s, 'streak', 1)
  else
    nfailed = tonumber(redis.call('HGET', s, 'failed')) or 0
    redis.call('HSET', s, 'streak', 0)
  end
  while true do
    local head = redis.call('LINDEX', o, 0)
    local sep = string.find(head, ':', 1, true)
    if tonumber(string.sub(head, 1, sep - 1)) + window <= now then
      redis.call('LPOP', o)
      if string.sub(head, sep + 1) == '1' then
        nfailed = nfailed - 1
      end
    else
      break
    end
  end
  redis.call('HSET', s, 'failed', nfailed)
  redis.call('EXPIRE', o, ttl)
  if not failed then
    return fmt(clock)
  end
  local count = redis.call('LLEN', o)
  if retry_after then
    redis.call('HSET', s, 'level', 0)
    open(s, o, now, retry_after)
  elseif streak >= failures or (count >= min_calls and nfailed / count >= rate) then
    redis.call('HSET', s, 'level', 0)
    open(s, o, now, cooldown)
  end
  return fmt(clock)
end

if op == 'snapshot' then
  -- ARGV: op, ttl; returns state, seconds_until_close, in_flight, log size, tokens, latency, now.
  redis.call('ZREMRANGEBYSCORE', c, '-inf', fmt(now))
  expire(s, l, t, now)
  local st = redis.call('HMGET', s, 'state', 'open_until', 'tokens', 'lat')
  local state = tonumber(st[1]) or 0
  local until_close = 0
  if state == 1 then
    local open_until = tonumber(st[2])
    if now < open_until then
      until_close = open_until - now
    else
      state = 2
    end
  end
  return {state, fmt(until_close), redis.call('ZCARD', c), redis.call('ZCARD', l),
          tonumber(st[3]) or 0, st[4] or '', fmt(clock)}
end

if op == 'renew' then
  -- ARGV: op, ttl, lease, tickets...: push the leases of calls still running.
  local lease = tonumber(ARGV[3])
  for k = 4, #ARGV do
    redis.call('ZADD', c, 'XX', fmt(now + lease), ARGV[k])
  end
  touch(s, l, t, c, o)
  return fmt(clock)
end

return redis.error_reply('unknown op')
"""
