--[[
  Whether a rate limit of `maxJobs` claims per window stops a claim now: the limiter key
  counts the window's claims and expires with the window.

  KEYS: none (the limiter key is an argument)
  ARGV: none
  Returns: the ms left in the window when `maxJobs` claims are used up (> 0), else 0 or
           less (room left; -1: used up but without expiry, which a claim resets); and the
           count of claims used
  Emits: none
  Compat: BullMQ's limiter key and rule.
]]
local function rateLimitTtl(limiterKey, maxJobs)
  local used = tonumber(rcall("GET", limiterKey)) or 0
  if used < maxJobs then
    return 0, used
  end
  return rcall("PTTL", limiterKey), used
end
