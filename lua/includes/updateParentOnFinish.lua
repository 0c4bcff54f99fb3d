--[[
  Tells a child's parent that the child finished for good (flows). The child hash carries
  `parentKey` (the parent's job key) and `parent` (JSON: id, queueKey = the parent's `P:Q`,
  and the failure flags fpof, cpof, idof, rdof). The parent may be in another queue or
  prefix; its keys are derived from those fields.

  Completed: the child leaves the parent's `:dependencies`, its return value (JSON text) is
  stored in the parent's `:processed` under the child's key, and when nothing is pending any
  more the parent leaves `waiting-children` (releaseParent). Without `parent` JSON the id and
  queue are read off `parentKey` (the text after the last ":" is the id).

  Failed, by the flag in `parent`:
    fpof (failParentOnFailure) - the child key moves to the parent's `:unsuccessful` (scored
         by now) and the parent is failed lazily (deferParentFailure);
    cpof (continueParentOnFailure) - the child key moves to the parent's `:failed` hash (with
         the failure reason) and the parent is released at once, even with other children
         still pending, as BullMQ does;
    idof (ignoreDependencyOnFailure) - the child leaves `:dependencies`, is recorded in
         `:failed`, and the parent is released when nothing is pending;
    rdof (removeDependencyOnFailure) - as idof, without the record;
    none - nothing: the failed child stays pending and the parent keeps waiting.
  A child already gone from `:dependencies` changes nothing.

  Undecodable `parent` JSON is treated as absent (BullMQ's script would error out instead).

  KEYS: none (every key is derived from the child's parent fields)
  ARGV: none
  Returns: nothing
  Emits: on the parent's queue, what releaseParent / deferParentFailure emit
  Compat: BullMQ 5 and 6 (their updateParentDepsIfNeeded and
          moveChildFromDependenciesIfNeeded).
]]
--!include releaseParent
--!include deferParentFailure

local function updateParentOnFinish(childKey, parentKey, rawParent, completed, value, now,
                                    compat)
  local parent = {}
  if rawParent then
    local ok, decoded = pcall(cjson.decode, rawParent)
    if ok and type(decoded) == "table" then
      parent = decoded
    end
  end
  local isSet = function(v)
    return v ~= nil and v ~= false and v ~= cjson.null
  end
  local parentId = isSet(parent["id"]) and tostring(parent["id"]) or nil
  local queueKey = type(parent["queueKey"]) == "string" and parent["queueKey"] or nil

  if completed then
    if not parentKey then
      return
    end
    if not parentId or not queueKey then
      parentId = string.match(parentKey, ".*:(.*)")
      if not parentId then
        return
      end
      queueKey = string.sub(parentKey, 1, #parentKey - #parentId - 1)
    end
    local deps = parentKey .. ":dependencies"
    if rcall("SREM", deps, childKey) == 1 then
      rcall("HSET", parentKey .. ":processed", childKey, value)
      if rcall("SCARD", deps) == 0 then
        releaseParent(queueKey, parentKey, parentId, now, compat)
      end
    end
    return
  end

  if not parentId or not queueKey then
    return
  end
  local key = queueKey .. ":" .. parentId
  local deps = key .. ":dependencies"
  if isSet(parent["fpof"]) then
    if rcall("SREM", deps, childKey) == 1 then
      rcall("ZADD", key .. ":unsuccessful", now, childKey)
      deferParentFailure(queueKey, key, parentId, childKey, now, compat)
    end
  elseif isSet(parent["cpof"]) then
    if rcall("SREM", deps, childKey) == 1 then
      rcall("HSET", key .. ":failed", childKey, value)
      releaseParent(queueKey, key, parentId, now, compat)
    end
  elseif isSet(parent["idof"]) or isSet(parent["rdof"]) then
    if rcall("SREM", deps, childKey) == 1 then
      if rcall("SCARD", deps) == 0 then
        releaseParent(queueKey, key, parentId, now, compat)
      end
      if isSet(parent["idof"]) then
        rcall("HSET", key .. ":failed", childKey, value)
      end
    end
  end
end
