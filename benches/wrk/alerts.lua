-- wrk script: POSTs the Groundspan seed alert, each request with an extRef of its own.
-- Used by benches/wrk/run.sh, which sets TOKEN and BODY (a body file whose extRef is
-- "__EXTREF__"), and CREATED, where done() writes each thread's extRef prefix and the number
-- of alerts it sent (for benches/wrk/alerts_put.lua).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "alerts_shared.lua")
local template = alert_template(os.getenv("BODY"))
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("prefix", string.format("wrk-%d-%d", os.time(), #threads))
end

-- A global, not a local: done() reads each thread's count with thread:get("sent").
sent = 0

function request()
  sent = sent + 1
  return alert_request("POST", template, ext_ref(prefix, sent))
end

function done(summary, latency, requests)
  local created = os.getenv("CREATED")
  if created then
    local file = io.open(created, "w")
    for _, thread in ipairs(threads) do
      file:write(string.format("%s %d\n", thread:get("prefix"), thread:get("sent")))
    end
    file:close()
  end
  report(summary, latency)
end
