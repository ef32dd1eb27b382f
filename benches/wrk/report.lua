-- What the alert scripts (alerts.lua, alerts_put.lua) print when wrk is done: the failed
-- requests and the latency percentiles, in the lines run.sh and the harness read.
function report(summary, latency)
  io.write(string.format("non-2xx or socket errors: %d\n",
    summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
  io.write(string.format("p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
