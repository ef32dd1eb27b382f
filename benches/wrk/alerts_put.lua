-- wrk script: PUTs updates of the alerts benches/wrk/alerts.lua created, each with a new price.
-- Used by benches/wrk/run.sh --put, which sets TOKEN, PUT_BODY (a body file whose extRef is
-- "__EXTREF__" and whose first price is "__PRICE__") and CREATED (alerts.lua's list: a line
-- "prefix count" per thread). Each thread updates its own list's alerts over and over, but the
-- last ones it sent, which were still in flight when that run stopped.
local token = os.getenv("TOKEN")
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
local template = io.open(os.getenv("PUT_BODY")):read("*a")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("index", #threads)
end

local prefix, count
local sent = 0

function init(args)
  local line = 0
  for entry in io.lines(os.getenv("CREATED")) do
    line = line + 1
    if line == index then
      local p, n = entry:match("^(%S+) (%d+)$")
      prefix, count = p, math.max(1, tonumber(n) - 64)
    end
  end
  assert(prefix, "no created alerts for this thread: run alerts.lua with as many threads first")
end

function request()
  sent = sent + 1
  local body = template:gsub("__EXTREF__", prefix .. "-" .. ((sent - 1) % count + 1))
      :gsub("__PRICE__", string.format("%.1f", 500 + sent))
  return wrk.format("PUT", "/maestro/v4/alerts", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }, body)
end

function done(summary, latency, requests)
  report(summary, latency)
end
