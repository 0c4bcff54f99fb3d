--[[
  Applies `removeOnComplete` / `removeOnFail` retention to a finished set after a job joined it:
  first drop jobs finished more than `age` seconds ago, at most `limit` per call (default
  1000), the most recently finished of them first as BullMQ does (so with a small limit the
  oldest expired jobs outlive newer expired ones until later calls); then keep only the newest
  `count` (count < 0 keeps all). Nothing runs in the background:
  retention is evaluated only when another job of the same kind finishes, as in BullMQ.
  A removed job that is still a pending dependency of a parent (a failed child without a
  failure flag) is unlinked first, which releases the parent when it was the last one
  (unlinkFromParent; `compat` is the worker's BULLMQ_COMPAT, for the parent's queue).

  KEYS: none
  ARGV: none
  Returns: nothing
  Emits: no `removed` event (BullMQ emits none either); waiting (prev waiting-children) on
         a parent's queue when unlinking released it
  Compat: same as BullMQ 5 and 6.
]]
--!include removeJobKeys
--!include unlinkFromParent

local function trimFinishedJobs(setKey, baseKey, now, count, age, limit, compat)
  if age then
    local bound = now - age * 1000
    local old = rcall("ZREVRANGEBYSCORE", setKey, bound, "-inf", "LIMIT", 0, limit or 1000)
    for _, id in ipairs(old) do
      unlinkFromParent(baseKey .. id, nil, compat)
      removeJobKeys(baseKey .. id)
      rcall("ZREM", setKey, id)
    end
  end
  if count > 0 then
    local extra = rcall("ZRANGE", setKey, 0, -(count + 1))
    if #extra > 0 then
      for _, id in ipairs(extra) do
        unlinkFromParent(baseKey .. id, nil, compat)
        removeJobKeys(baseKey .. id)
      end
      rcall("ZREMRANGEBYRANK", setKey, 0, -(count + 1))
    end
  end
end
