-- Assign one topic's batch of events to stories, each event at most once (docs/design.md "Stories").
--
-- Why a script: "was this offset applied?", the choice of story and the update of its centroid must
-- be one atomic step, or two workers seeing the same topic (or a redelivery) would split a story or
-- count an event twice. The worker plans with its cached copy of the topic's stories (the nearest
-- and runner-up per event, workers/stories/book.py); this script decides for real among those, the
-- stories other workers changed since the worker's copy (version), and the event's own new story.
--
-- KEYS: offsets ledger, index (zset id -> last event time), changed (zset id -> version), sums (hash
--       id -> float32 sum), meta (hash id -> JSON), state (hash: version, now), centers (hash lang ->
--       float32 sum, lang#n -> count) -- contracts/keys.py
-- ARGV: topic, the worker's version, wall clock, threshold, max_active, quiet_s, rate_tau_s, dim,
--       key ttl (s), center prior, the events as one JSON array of [ledger field ("" = no dedup),
--       offset, event id ("" = no story, only the offset counts), lang, sentiment, ts, id of its own
--       new story, candidate ids (comma-separated), text excerpt, link], and their embeddings as
--       one string: dim float32 (little-endian) per event with an id, in order (two arguments
--       instead of eleven per event: redis-py's packing of ~700 arguments was most of the worker's
--       cost per batch)
-- Returns {header JSON, then id, float32 sum for each story changed since the worker's version,
--          then one float32 sum per language in header.centers}
-- header: {version, stories = [id or false per event], skipped, removed = [ids ended here],
--          gone = [candidates that no longer exist], now, reset, changed = [[id, last_ts]],
--          centers = [[lang, n]]} (cjson writes an empty list as {}).
local offsets_key, index_key, changed_key, sums_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local meta_key, state_key, centers_key = KEYS[5], KEYS[6], KEYS[7]
local topic, since, wall = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local threshold, max_active, quiet = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local tau, dim, ttl, prior = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local FMT = '<' .. string.rep('f', dim)

local function unpackv(bytes)
  local t = {struct.unpack(FMT, bytes)}
  t[#t] = nil  -- struct.unpack's last value is the next position
  return t
end

local function packv(v)
  return struct.pack(FMT, unpack(v))
end

local function zeros()
  local t = {}
  for d = 1, dim do t[d] = 0 end
  return t
end

local function cosine(x, s)
  local dot, nn = 0, 0
  for d = 1, dim do
    dot = dot + x[d] * s[d]
    nn = nn + s[d] * s[d]
  end
  if nn <= 0 then return -2 end
  return dot / math.sqrt(nn)
end

local version = tonumber(redis.call('HGET', state_key, 'version') or '0')
local reset = false
if since > version then  -- the topic's state expired and started again: the worker's copy is void
  since, reset = 0, true
end
local now = tonumber(redis.call('HGET', state_key, 'now') or '-1e308')
local others = {}
if since < version then
  others = redis.call('ZRANGEBYSCORE', changed_key, '(' .. since, '+inf')
end

local loaded, touched, removed, gone, unplanned = {}, {}, {}, {}, {}

local function load(id)
  local s = loaded[id]
  if s ~= nil then return s end
  local raw = redis.call('HGET', sums_key, id)
  if not raw then
    loaded[id] = false
    return false
  end
  s = {sum = unpackv(raw), meta = cjson.decode(redis.call('HGET', meta_key, id))}
  loaded[id] = s
  return s
end

local function drop(id)
  local s = load(id)
  if s then  -- its representatives' vectors
    for lang, _ in pairs(s.meta.langs) do redis.call('HDEL', sums_key, id .. '|' .. lang) end
  end
  redis.call('ZREM', index_key, id)
  redis.call('ZREM', changed_key, id)
  redis.call('HDEL', sums_key, id)
  redis.call('HDEL', meta_key, id)
  loaded[id], touched[id] = false, nil
  removed[#removed + 1] = id
end

local function expire()
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', index_key, '-inf', '(' .. string.format('%.17g', now - quiet))) do
    drop(id)
  end
end

local function evict(keep)
  local n = redis.call('ZCARD', index_key)
  while n > max_active do
    local low = redis.call('ZRANGE', index_key, 0, 1)  -- oldest last event, then lowest id: as book.py
    local id = low[1] ~= keep and low[1] or low[2]
    drop(id)
    n = n - 1
  end
end

local centers = {}
local function center_of(lang)
  local c = centers[lang]
  if c == nil then
    local raw = redis.call('HGET', centers_key, lang)
    c = {sum = raw and unpackv(raw) or zeros(), n = tonumber(redis.call('HGET', centers_key, lang .. '#n') or '0')}
    centers[lang] = c
  end
  return c
end

-- record.py's join(): count the event, keep the per-language representative closest to the centroid
-- (the representative's vector is kept next to the sum, so its closeness is judged against the
-- centroid as it is now, not as it was when it joined)
local function join(meta, sum, x, eid, lang, sentiment, ts, text, link)
  meta.count = meta.count + 1
  meta.first_ts = math.min(meta.first_ts, ts)
  meta.last_ts = math.max(meta.last_ts, ts)
  if ts >= meta.rate_ts then
    meta.rate = meta.rate * math.exp(-(ts - meta.rate_ts) / tau) + 1
    meta.rate_ts = ts
  else
    meta.rate = meta.rate + math.exp(-(meta.rate_ts - ts) / tau)
  end
  local l = meta.langs[lang]
  if l == nil then
    l = {count = 0, sentiment_sum = 0}
    meta.langs[lang] = l
  end
  l.count = l.count + 1
  l.sentiment_sum = l.sentiment_sum + sentiment
  local sim = cosine(x, sum)
  local rep_key = meta.id .. '|' .. lang
  if l.rep ~= nil and l.rep ~= cjson.null then
    local rep_sim = cosine(unpackv(redis.call('HGET', sums_key, rep_key)), sum)
    if sim <= rep_sim then
      l.rep.sim = rep_sim
      return
    end
  end
  l.rep = {id = eid, lang = lang, text = text, link = link, sim = sim}
  redis.call('HSET', sums_key, rep_key, packv(x))
end

local last, moved = {}, {}
local out, skipped = {}, 0
local events, blob, vec_no = cjson.decode(ARGV[11]), ARGV[12], 0
for _, ev in ipairs(events) do
  local src, off = ev[1], tonumber(ev[2])
  local has_vec = ev[3] ~= ''
  if has_vec then vec_no = vec_no + 1 end
  local fresh = true
  if src ~= '' then
    if last[src] == nil then last[src] = tonumber(redis.call('HGET', offsets_key, src) or '-1') end
    if off <= last[src] then
      fresh = false
    else
      last[src], moved[src] = off, true
    end
  end
  if not fresh then
    skipped = skipped + 1
    out[#out + 1] = false
  elseif not has_vec then  -- an event with no story: only its offset counts
    out[#out + 1] = false
  else
    local eid, lang, sentiment = ev[3], ev[4], tonumber(ev[5])
    local ts = math.min(tonumber(ev[6]), wall)
    local e = {struct.unpack(FMT, blob, (vec_no - 1) * dim * 4 + 1)}
    e[#e] = nil
    -- the event relative to its language's running center (centers.py LanguageCenters)
    local c = center_of(lang)
    c.n = c.n + 1
    local x, nx = {}, 0
    for d = 1, dim do
      c.sum[d] = c.sum[d] + e[d]
      x[d] = e[d] - c.sum[d] / (prior + c.n)
      nx = nx + x[d] * x[d]
    end
    nx = math.sqrt(nx)
    if nx <= 1e-9 then
      out[#out + 1] = false
    else
      for d = 1, dim do x[d] = x[d] / nx end
      if ts > now then now = ts end
      expire()
      local best, best_sim = nil, -2
      local function consider(id)
        local s = load(id)
        if s then
          local sim = cosine(x, s.sum)
          if sim > best_sim or (sim == best_sim and best ~= nil and id < best) then best, best_sim = id, sim end
        elseif id ~= '' then
          gone[#gone + 1] = id
        end
      end
      local planned = string.match(ev[8], '^[^,]+')
      for id in string.gmatch(ev[8], '[^,]+') do consider(id) end
      for _, id in ipairs(others) do consider(id) end
      for _, id in ipairs(unplanned) do consider(id) end
      local sid = (best ~= nil and best_sim >= threshold) and best or ev[7]
      local s = load(sid)
      if not s and sid ~= planned then
        -- a story the worker's plan did not foresee (its copy was behind): later events of this
        -- batch must see it too
        unplanned[#unplanned + 1] = sid
      end
      if not s then
        s = {sum = zeros(), meta = {id = sid, topic = topic, first_ts = ts, last_ts = ts, count = 0, rate = 0,
                                   rate_ts = ts, langs = {}}}
        loaded[sid] = s
      end
      for d = 1, dim do s.sum[d] = s.sum[d] + x[d] end
      join(s.meta, s.sum, x, eid, lang, sentiment, ts, ev[9], ev[10])
      touched[sid] = true
      redis.call('ZADD', index_key, string.format('%.17g', s.meta.last_ts), sid)
      evict(sid)
      out[#out + 1] = sid
    end
  end
end

local center_list, center_sums = {}, {}
if next(touched) ~= nil or #removed > 0 then version = version + 1 end
for id, _ in pairs(touched) do
  local s = loaded[id]
  redis.call('HSET', sums_key, id, packv(s.sum))
  redis.call('HSET', meta_key, id, cjson.encode(s.meta))
  redis.call('ZADD', changed_key, version, id)
end
for lang, c in pairs(centers) do
  redis.call('HSET', centers_key, lang, packv(c.sum), lang .. '#n', c.n)
  center_list[#center_list + 1] = {lang, c.n}
  center_sums[#center_sums + 1] = packv(c.sum)
end
for src, _ in pairs(moved) do
  redis.call('HSET', offsets_key, src, string.format('%d', last[src]))
end
redis.call('HSET', state_key, 'version', version, 'now', string.format('%.17g', now))
for _, k in ipairs({index_key, changed_key, sums_key, meta_key, state_key}) do
  redis.call('EXPIRE', k, ttl)
end

-- what changed since the worker's copy (its own batch included): ids, last event times, sums
local reply, changed = {''}, {}
local ids = redis.call('ZRANGEBYSCORE', changed_key, '(' .. since, '+inf')
for _, id in ipairs(ids) do
  local s = loaded[id]
  local sum = s and packv(s.sum) or (s == nil and redis.call('HGET', sums_key, id))
  if sum then  -- no need to decode what this call did not touch
    changed[#changed + 1] = {id, tonumber(redis.call('ZSCORE', index_key, id))}
    reply[#reply + 1] = id
    reply[#reply + 1] = sum
  end
end
for _, b in ipairs(center_sums) do reply[#reply + 1] = b end
reply[1] = cjson.encode({version = version, stories = out, skipped = skipped, removed = removed, gone = gone,
                         now = now, reset = reset, changed = changed, centers = center_list})
return reply
