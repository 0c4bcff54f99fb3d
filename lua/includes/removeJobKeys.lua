--[[
  Deletes a job's hash and its satellite keys (logs, dependencies, processed, failed,
  unsuccessful). The lock is not touched.

  KEYS: none
  ARGV: none
  Returns: nothing
  Emits: none
  Compat: the same key set BullMQ deletes.
]]
local function removeJobKeys(jobKey)
  rcall("DEL", jobKey, jobKey .. ":logs", jobKey .. ":dependencies", jobKey .. ":processed",
        jobKey .. ":failed", jobKey .. ":unsuccessful")
end
