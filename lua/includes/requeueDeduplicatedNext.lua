--[[
  Creates the job a producer added with `deduplication: {keepLastIfActive: true}` while the
  job owning that deduplication id was active. The producer stored it in `P:Q:dn:<dedupId>`
  (fields name, data, opts, jid, and optionally pk, pd, pdk, rjk); when the owner finishes,
  the stored job becomes a real one: id `jid` (or the next `P:Q:id`, which is bumped either
  way), the deduplication key now names it (without TTL for keepLastIfActive, else with the
  dedup `ttl`), it is enqueued like a fresh add (delayed, prioritized, or the ready list, LIFO
  when asked), and the `dn:` hash is deleted only after all of that.

  `opts` is stored as the producer wrote it. Options we cannot decode are treated as empty
  (no delay, no priority) rather than losing the job.

  KEYS: none (the caller passes its key table: wait, paused, prioritized, pc, delayed, marker,
        events)
  ARGV: none
  Returns: the new job's id, or nil when nothing was stored
  Emits: added, then waiting (or delayed with the due time)
  Compat: the same job, keys and events as BullMQ 5.81+ and 6 on finalization.
]]
--!include delayedScore
--!include addDelayMarker
--!include addWakeMarker
--!include pushReady
--!include readyListFor
--!include emitEvent

local function requeueDeduplicatedNext(k, baseKey, dedupId, now, state)
  local nextKey = baseKey .. "dn:" .. dedupId
  if rcall("EXISTS", nextKey) == 0 then
    return nil
  end
  local f = rcall("HMGET", nextKey, "name", "data", "opts", "jid", "pk", "pd", "pdk", "rjk")
  local counter = rcall("INCR", baseKey .. "id")
  local newId = tostring(counter)
  if f[4] and f[4] ~= "" then
    newId = f[4]
  end
  local rawOpts = f[3] or "{}"
  local decoded, opts = pcall(cjson.decode, rawOpts)
  if not decoded or type(opts) ~= "table" then
    opts = {}
  end
  local de = type(opts["de"]) == "table" and opts["de"] or {}
  local delay = tonumber(opts["delay"]) or 0
  local priority = tonumber(opts["priority"]) or 0

  local dedupKey = baseKey .. "de:" .. dedupId
  local ttl = tonumber(de["ttl"])
  if not de["keepLastIfActive"] and ttl and ttl > 0 then
    rcall("SET", dedupKey, newId, "PX", ttl)
  else
    rcall("SET", dedupKey, newId)
  end

  local jobKey = baseKey .. newId
  local fields = {"name", f[1] or "", "data", f[2] or "{}", "opts", rawOpts, "timestamp", now,
                  "delay", delay, "priority", priority, "deid", dedupId}
  if f[5] then
    fields[#fields + 1] = "parentKey"
    fields[#fields + 1] = f[5]
    if f[6] then
      fields[#fields + 1] = "parent"
      fields[#fields + 1] = f[6]
    end
  end
  if f[8] then
    fields[#fields + 1] = "rjk"
    fields[#fields + 1] = f[8]
  end
  rcall("HSET", jobKey, unpack(fields))
  emitEvent(k.events, state.maxEvents, "added", "jobId", newId, "name", f[1] or "")

  if delay > 0 then
    local due = now + delay
    rcall("ZADD", k.delayed, delayedScore(k.delayed, due), newId)
    emitEvent(k.events, state.maxEvents, "delayed", "jobId", newId, "delay", due)
    addDelayMarker(k.marker, k.delayed)
  else
    local pushCmd = opts["lifo"] and "RPUSH" or "LPUSH"
    pushReady(readyListFor(k.wait, k.paused, state), k.prioritized, k.pc, newId, priority,
              pushCmd)
    addWakeMarker(k.marker, state)
    emitEvent(k.events, state.maxEvents, "waiting", "jobId", newId)
  end
  if f[7] then
    rcall("SADD", f[7], jobKey)
  end
  rcall("DEL", nextKey)
  return newId
end
