-- wrk script: PUTs updates of the alerts benches/wrk/alerts.lua created, each with a new price.
-- Used by benches/wrk/run.sh --put, which sets TOKEN, PUT_BODY (a body file whose extRef is
-- "__EXTREF__" and whose first price is "__PRICE__"), CREATED (alerts.lua's list: a line
-- "prefix count" per thread) and IN_FLIGHT (connections per thread). Each thread updates its
-- own list's alerts over and over, but the last IN_FLIGHT it sent, which may still have been
-- unanswered when that run stopped.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "alerts_shared.lua")
local template = alert_template(os.getenv("PUT_BODY"))
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("index", #threads)
end

local prefix, count
local sent = 0

function init(args)
  local in_flight = tonumber(os.getenv("IN_FLIGHT") or "64")
  local line = 0
  for entry in io.lines(os.getenv("CREATED")) do
    line = line + 1
    if line == index then
      local p, n = entry:match("^(%S+) (%d+)$")
      prefix, count = p, math.max(1, tonumber(n) - in_flight)
    end
  end
  assert(prefix, "no created alerts for this thread: run alerts.lua with as many threads first")
end

function request()
  sent = sent + 1
  local price = string.format("%.1f", 500 + sent)
  return alert_request("PUT", template, ext_ref(prefix, (sent - 1) % count + 1), price)
end

function done(summary, latency, requests)
  report(summary, latency)
end
