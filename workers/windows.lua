-- Apply a batch of scored events to tumbling windows, each event at most once.
--
-- Why a script: the check "was this Kafka offset applied already?" and the increments must be one
-- atomic step, or a worker killed between them double-counts (or loses) a batch on redelivery.
-- Kafka transactions are not available on every broker we run on, so the sink is idempotent.
--
-- ARGV: prefix, size_s, ttl_s, n_history, then 7 fields per event:
--       source ("topic:partition", "" = no dedup), offset, topic, lang, label, sentiment, ts
-- Returns: {applied, skipped, then per touched window: topic, lang, start, count, sentiment_sum,
--           followed by n_history counts of the previous windows (oldest first; nil = no key)}
local prefix, size, ttl, nhist = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local offsets_key = prefix .. ':offsets'
local label_field = {negative = 'negative', neutral = 'neutral', positive = 'positive'}

local last, moved = {}, {}
local deltas, order = {}, {}
local applied, skipped = 0, 0

local function wkey(topic, lang, start)
  return prefix .. ':w:' .. size .. ':' .. topic .. ':' .. lang .. ':' .. string.format('%d', start)
end

for i = 5, #ARGV, 7 do
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
  if fresh then
    applied = applied + 1
    local topic, lang, label = ARGV[i + 2], ARGV[i + 3], label_field[ARGV[i + 4]]
    local sentiment, ts = tonumber(ARGV[i + 5]), tonumber(ARGV[i + 6])
    local start = math.floor(ts / size) * size
    for _, l in ipairs({lang, '*'}) do
      local key = wkey(topic, l, start)
      local d = deltas[key]
      if d == nil then
        d = {count = 0, negative = 0, neutral = 0, positive = 0, sum = 0, topic = topic, lang = l, start = start}
        deltas[key] = d
        order[#order + 1] = key
      end
      d.count = d.count + 1
      d[label] = d[label] + 1
      d.sum = d.sum + sentiment
    end
  else
    skipped = skipped + 1
  end
end

for _, key in ipairs(order) do
  local d = deltas[key]
  redis.call('HINCRBY', key, 'count', d.count)
  for _, f in ipairs({'negative', 'neutral', 'positive'}) do
    if d[f] > 0 then redis.call('HINCRBY', key, f, d[f]) end
  end
  redis.call('HINCRBYFLOAT', key, 'sentiment_sum', string.format('%.17g', d.sum))
  redis.call('EXPIRE', key, ttl)
  redis.call('SADD', prefix .. ':topics', d.topic)
  redis.call('SADD', prefix .. ':langs:' .. d.topic, d.lang)
end
if skipped > 0 then
  redis.call('HINCRBY', prefix .. ':stats', 'redelivered_skipped', skipped)
end
for src, _ in pairs(moved) do
  redis.call('HSET', offsets_key, src, string.format('%d', last[src]))
end

local out = {applied, skipped}
for _, key in ipairs(order) do
  local d = deltas[key]
  local cur = redis.call('HMGET', key, 'count', 'sentiment_sum')
  out[#out + 1] = d.topic
  out[#out + 1] = d.lang
  out[#out + 1] = string.format('%d', d.start)
  out[#out + 1] = cur[1]
  out[#out + 1] = cur[2]
  for k = nhist, 1, -1 do
    local prev = redis.call('HGET', wkey(d.topic, d.lang, d.start - k * size), 'count')
    out[#out + 1] = prev
  end
end
return out
