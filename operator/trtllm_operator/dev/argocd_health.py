"""Argo CD's health check of a trtllm.dev object, evaluated the way Argo CD does (dev tooling: the demo
prints the verdict; tests/unit/test_argocd_health.py runs every case of the scripts' health_test.yaml).

Argo CD evaluates ``argocd-cm`` health checks in gopher-lua (Lua 5.1) with only the base, table and
package libraries and a cut-down ``os``. Here the script in
``manifests/argocd/resource_customizations/trtllm.dev/<Kind>/health.lua`` runs in lupa's Lua 5.1 (a dev
dependency, imported on first use) inside an environment with exactly those libraries.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from trtllm_operator.dev.cluster import REPO_ROOT

ARGO_DIR = REPO_ROOT / "manifests" / "argocd"
CHECKS_DIR = ARGO_DIR / "resource_customizations" / "trtllm.dev"
# What gopher-lua's OpenBase registers (Argo opens it, plus table, package and its safe os).
ARGO_BASE = (
    "assert",
    "error",
    "getfenv",
    "getmetatable",
    "ipairs",
    "load",
    "loadstring",
    "next",
    "pairs",
    "pcall",
    "print",
    "rawequal",
    "rawget",
    "rawset",
    "select",
    "setfenv",
    "setmetatable",
    "tonumber",
    "tostring",
    "type",
    "unpack",
    "xpcall",
    "_VERSION",
)
SANDBOX = """
function(script, obj, base)
  local env = {obj = obj}
  for _, name in ipairs(base) do env[name] = _G[name] end
  env._G = env
  env.table = table
  env.os = {time = os.time, date = os.date, clock = os.clock, difftime = os.difftime}
  env.require = function(name) error("module '" .. name .. "' not found (not preloaded in Argo CD)") end
  debug.setmetatable("", nil)  -- Argo does not open the string library: no ("x"):find(...) either
  local chunk = assert(loadstring(script, "=health.lua"))
  setfenv(chunk, env)
  return chunk()
end
"""


def plain(value: Any) -> Any:
    """As Argo hands objects to Lua: JSON types only (timestamps stay strings)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def run_health(script: str, obj: dict[str, Any]) -> dict[str, Any]:
    """Evaluate ``script`` for ``obj`` the way Argo CD does; return its table as a dict."""
    from lupa import lua51

    lua = lua51.LuaRuntime(unpack_returned_tuples=False)
    run = lua.eval(SANDBOX)
    result = run(script, lua.table_from(plain(obj), recursive=True), lua.table_from(list(ARGO_BASE)))
    if lua.eval("type")(result) != "table":
        raise ValueError(f"health.lua must return a table, got {result!r}")
    return {str(k): v for k, v in result.items()}


def script_of(kind: str) -> str:
    return (CHECKS_DIR / kind / "health.lua").read_text()
