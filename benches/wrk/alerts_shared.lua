-- What the alert scripts (alerts.lua, alerts_put.lua) share: the request for one alert, and
-- what they print when wrk is done (the failed requests and the latency percentiles, in the
-- lines run.sh and the harness read). TOKEN is the company token run.sh issues.
local token = os.getenv("TOKEN")
local scattered = os.getenv("EXT_REFS") == "scattered"

-- The extRef of a thread's `n`th alert: `prefix-n`, or with EXT_REFS=scattered eight hex digits
-- that jump across the thread's range from one alert to the next (n times an odd constant,
-- modulo 2^32: no two alike), so that each insert lands on its own page of the extRef index,
-- as a partner's random UUIDs do.
function ext_ref(prefix, n)
  if scattered then
    return string.format("%s-%08x", prefix, (n * 2654435761) % 4294967296)
  end
  return prefix .. "-" .. n
end

-- The body file `path`, whose extRef is "__EXTREF__" (and, for updates, whose first price is
-- "__PRICE__").
function alert_template(path)
  local file = assert(io.open(path))
  local template = file:read("*a")
  file:close()
  return template
end

-- A request of `method` to /maestro/v4/alerts with `template` filled in.
function alert_request(method, template, ext_ref, price)
  local body = template:gsub("__EXTREF__", ext_ref)
  if price then
    body = body:gsub("__PRICE__", price)
  end
  return wrk.format(method, "/maestro/v4/alerts", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }, body)
end

function report(summary, latency)
  io.write(string.format("non-2xx or socket errors: %d\n",
    summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
  io.write(string.format("p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
