-- Argo CD health check for trtllm.dev/InferenceService, the kstatus rules the operator's conditions follow:
-- deleting or not yet observed -> Progressing; Reconciling=True -> Progressing; Stalled=True ->
-- Degraded; Ready=True -> Healthy (warning conditions named in the message); otherwise Progressing.
-- Only Lua's base and table libraries: Argo CD runs argocd-cm health checks without string/math.
local hs = {}

local function find(conditions, name)
  if type(conditions) ~= "table" then
    return nil
  end
  for _, condition in ipairs(conditions) do
    if condition.type == name then
      return condition
    end
  end
  return nil
end

local function is_true(condition)
  return condition ~= nil and condition.status == "True"
end

local function text(condition, fallback)
  if condition ~= nil and condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  if condition ~= nil and condition.reason ~= nil and condition.reason ~= "" then
    return condition.reason
  end
  return fallback
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Being deleted"
  return hs
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and tostring(observed) ~= tostring(generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = obj.status.conditions
local ready = find(conditions, "Ready")
local reconciling = find(conditions, "Reconciling")
local stalled = find(conditions, "Stalled")

if is_true(reconciling) then
  hs.status = "Progressing"
  hs.message = text(reconciling, text(ready, "Reconciling"))
  return hs
end

if is_true(stalled) then
  hs.status = "Degraded"
  hs.message = text(stalled, text(ready, "Stalled"))
  return hs
end

if is_true(ready) then
  local warnings = {}
  for _, name in ipairs({"UnvalidatedEngine", "Degraded"}) do
    local warning = find(conditions, name)
    if is_true(warning) then
      table.insert(warnings, name .. ": " .. text(warning, "True"))
    end
  end
  hs.status = "Healthy"
  hs.message = text(ready, "Ready")
  if #warnings > 0 then
    hs.message = hs.message .. " (warning " .. table.concat(warnings, "; ") .. ")"
  end
  return hs
end

hs.status = "Progressing"
hs.message = text(ready, "Waiting for the Ready condition")
return hs
