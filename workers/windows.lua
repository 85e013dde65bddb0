-- Apply a batch of scored events to event-time windows, each event at most once.
--
-- Why a script: "was this Kafka offset applied already?", "is this event too late?" and the
-- increments must be one atomic step, or a worker killed between them double-counts (or loses) a
-- batch on redelivery. Kafka transactions are not available on every broker we run on, so the
-- sink itself is idempotent.
--
-- KEYS: offsets ledger, watermarks, stats, closed-window outbox, topics index (contracts/keys.py)
-- ARGV: window key pieces (5), langs key pieces (2) -- RedisKeys.pieces: which window keys a batch
--       touches depends on the ledger and the watermarks read here, so they are built here (see
--       WindowStore.apply_batch for the measurement),
--       retention (windows kept per spec), n_history, allowed_lateness_s, now, n_specs,
--       then n_specs triples (size_s, hop_s, name) -- the first spec is the primary one,
--       then 8 fields per event:
--       source ("topic:partition", "" = no dedup), offset, topic, lang, label, sentiment, ts, modalities
-- Watermark per topic: max event time seen (never past `now`, the worker's clock, so one event
-- dated in the future cannot make the present late) minus allowed lateness. An event older than its topic's
-- watermark is late: it updates no window and is reported back (the caller sends it to the late
-- topic). A window [start, start+size) closes when the watermark passes its end.
-- Returns one JSON object: {applied, skipped, late = [batch indexes from 0],
--   open = [{topic, lang, start, count, sentiment_sum, history}] (the primary spec's touched windows;
--     sentiment_sum as Redis holds it, a string: cjson would round it to 14 digits; history: the
--     n_history previous windows' counts, oldest first, null = no key),
--   closed = [the closed windows, as pushed to the outbox], outbox = its length, closed_dropped}
-- (cjson writes an empty list as {}.) Closed windows wait in the outbox (JSON) until sent;
-- closed_dropped: see the closing loop below.
local offsets_key, wm_key, stats_key, outbox_key, topics_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local W1, W2, W3, W4, W5 = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local L1, L2 = ARGV[6], ARGV[7]
local retention, nhist, lateness = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local now, nspecs = tonumber(ARGV[11]), tonumber(ARGV[12])
local specs = {}
for k = 1, nspecs do
  local i = 10 + 3 * k
  specs[k] = {size = tonumber(ARGV[i]), hop = tonumber(ARGV[i + 1]), name = ARGV[i + 2]}
end
local first_event = 13 + 3 * nspecs

local function wkey(spec, topic, lang, start)
  return W1 .. spec.name .. W2 .. topic .. W3 .. lang .. W4 .. string.format('%d', start) .. W5
end

local function langs_key(topic)
  return L1 .. topic .. L2
end

local last, moved = {}, {}
local maxts, wm_old = {}, {}
local deltas, order = {}, {}
local applied, skipped, late = 0, 0, {}

local function watermark(topic)
  if maxts[topic] == nil then
    local v = redis.call('HGET', wm_key, topic)
    -- clamped on read too: heals a watermark an older version let run into the future
    maxts[topic] = v and math.min(tonumber(v), now) or false
    wm_old[topic] = maxts[topic]
  end
  return maxts[topic]
end

local function add(key, spec, topic, lang, start, label, sentiment, modalities)
  local d = deltas[key]
  if d == nil then
    d = {count = 0, negative = 0, neutral = 0, positive = 0, sum = 0, sq = 0, text = 0, image = 0,
         topic = topic, lang = lang, start = start, spec = spec}
    deltas[key] = d
    order[#order + 1] = key
  end
  d.count = d.count + 1
  d[label] = d[label] + 1
  d.sum = d.sum + sentiment
  d.sq = d.sq + sentiment * sentiment
  if modalities % 2 == 1 then d.text = d.text + 1 end
  if modalities >= 2 then d.image = d.image + 1 end
end

local idx = -1  -- the event's index in the batch, from 0
for i = first_event, #ARGV, 8 do
  idx = idx + 1
  local src, off = ARGV[i], tonumber(ARGV[i + 1])
  local fresh = true
  if src ~= '' then
    if last[src] == nil then
      last[src] = tonumber(redis.call('HGET', offsets_key, src) or '-1')
    end
    if off <= last[src] then
      fresh = false
    else
      last[src] = off
      moved[src] = true
    end
  end
  if not fresh then
    skipped = skipped + 1
  else
    local topic, lang, label = ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
    local sentiment, ts, modalities = tonumber(ARGV[i + 5]), tonumber(ARGV[i + 6]), tonumber(ARGV[i + 7])
    local seen = watermark(topic)
    if seen and ts < seen - lateness then
      late[#late + 1] = idx
    else
      applied = applied + 1
      if (not seen) or ts > seen then maxts[topic] = math.min(ts, now) end
      for _, spec in ipairs(specs) do
        -- every window [s, s+size) with s a multiple of hop that holds ts
        local s = math.floor(ts / spec.hop) * spec.hop
        while s > ts - spec.size do
          for _, l in ipairs({lang, '*'}) do
            add(wkey(spec, topic, l, s), spec, topic, l, s, label, sentiment, modalities)
          end
          s = s - spec.hop
        end
      end
    end
  end
end

for _, key in ipairs(order) do
  local d = deltas[key]
  redis.call('HINCRBY', key, 'count', d.count)
  for _, f in ipairs({'negative', 'neutral', 'positive', 'text', 'image'}) do
    if d[f] > 0 then redis.call('HINCRBY', key, f, d[f]) end
  end
  redis.call('HINCRBYFLOAT', key, 'sentiment_sum', string.format('%.17g', d.sum))
  redis.call('HINCRBYFLOAT', key, 'sentiment_sq', string.format('%.17g', d.sq))
  redis.call('EXPIRE', key, d.spec.size * retention)
  redis.call('SADD', topics_key, d.topic)
  redis.call('SADD', langs_key(d.topic), d.lang)
end
for src, _ in pairs(moved) do
  redis.call('HSET', offsets_key, src, string.format('%d', last[src]))
end
if skipped > 0 then redis.call('HINCRBY', stats_key, 'redelivered_skipped', skipped) end
if #late > 0 then redis.call('HINCRBY', stats_key, 'late', #late) end

-- open windows of the primary spec, with the volume history the open-window detectors need
local primary = specs[1]
local open = {}
for _, key in ipairs(order) do
  local d = deltas[key]
  if d.spec == primary then
    local cur = redis.call('HMGET', key, 'count', 'sentiment_sum')
    local history = {}
    for k = nhist, 1, -1 do
      local c = redis.call('HGET', wkey(primary, d.topic, d.lang, d.start - k * primary.size), 'count')
      history[#history + 1] = c and tonumber(c) or cjson.null
    end
    open[#open + 1] = {topic = d.topic, lang = d.lang, start = d.start, count = tonumber(cur[1]),
                       sentiment_sum = cur[2], history = history}
  end
end

-- windows closed by the watermark's advance, for every spec and language of each topic
local closed, dropped = {}, 0

local function close(spec, topic, l, s)
  local h = redis.call('HMGET', wkey(spec, topic, l, s), 'count', 'negative', 'neutral', 'positive',
                       'sentiment_sum', 'sentiment_sq', 'text', 'image')
  if h[1] or l == '*' then  -- '*' even without a key: zero volume is a signal
    -- the JSON form of contracts.windows.ClosedWindow
    local c = {topic = topic, lang = l, size_s = spec.size, hop_s = spec.hop, start = s,
               count = tonumber(h[1] or '0'), negative = tonumber(h[2] or '0'), neutral = tonumber(h[3] or '0'),
               positive = tonumber(h[4] or '0'), sentiment_sum = tonumber(h[5] or '0'),
               sentiment_sq = tonumber(h[6] or '0'), text = tonumber(h[7] or '0'), image = tonumber(h[8] or '0')}
    closed[#closed + 1] = c
    -- outbox: the closure survives a crash between this script and the Kafka send
    redis.call('RPUSH', outbox_key, cjson.encode(c))
  end
end

for topic, ts in pairs(maxts) do
  if ts then
    redis.call('HSET', wm_key, topic, string.format('%.17g', ts))
    local old = wm_old[topic]
    if old and ts > old then
      local wm0, wm1 = old - lateness, ts - lateness
      local langs = redis.call('SMEMBERS', langs_key(topic))
      for _, spec in ipairs(specs) do
        -- starts s (multiples of hop) of the windows closing now: wm0 < s + size <= wm1, newest
        -- first. A long jump in event time (a topic quiet for days, a replay) closes many, and
        -- every one that has a key is reported. Only these can have one: the newest `retention`
        -- (younger than the keys' TTL), those that can hold events of earlier batches (s <= old,
        -- the newest event time before this batch) and those this batch wrote (the gap between
        -- them is otherwise empty: no event there was ever applied). The gap's empty windows are
        -- not listed one by one; they are counted in the stats' closed_dropped.
        local hi = math.floor((wm1 - spec.size) / spec.hop) * spec.hop
        local lo = math.floor((wm0 - spec.size) / spec.hop) * spec.hop + spec.hop
        local horizon = hi - (retention - 1) * spec.hop
        local tail = math.min(math.floor(old / spec.hop) * spec.hop, horizon - spec.hop)
        local s = hi
        while s >= lo do
          if s < horizon and s > tail then  -- the gap: jump to the old tail
            local gap_lo = math.max(tail + spec.hop, lo)
            dropped = dropped + (s - gap_lo) / spec.hop + 1
            for _, key in ipairs(order) do
              local d = deltas[key]
              if d.spec == spec and d.topic == topic and d.start >= gap_lo and d.start <= s then
                close(spec, topic, d.lang, d.start)
                if d.lang == '*' then dropped = dropped - 1 end
              end
            end
            s = tail
          else
            for _, l in ipairs(langs) do close(spec, topic, l, s) end
            s = s - spec.hop
          end
        end
      end
    end
  end
end
if dropped > 0 then redis.call('HINCRBY', stats_key, 'closed_dropped', dropped) end
return cjson.encode({applied = applied, skipped = skipped, late = late, open = open, closed = closed,
                     outbox = redis.call('LLEN', outbox_key), closed_dropped = dropped})
