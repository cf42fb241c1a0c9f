-- ringway perf harness: wrk done() hook shared by every scenario.
-- Prints one machine-readable line after wrk's own report:
--   RWPERF requests=N duration_us=N p50_us=N p99_us=N p999_us=N
--          connect=N read=N write=N timeout=N status=N bytes=N
-- status counts non-2xx/3xx answers; the others are socket errors.
-- Loaded by every other script in this folder; on its own it is the
-- plain GET script (wrk -s perf/wrk/report.lua URL).
function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "RWPERF requests=%d duration_us=%d p50_us=%d p99_us=%d p999_us=%d " ..
      "connect=%d read=%d write=%d timeout=%d status=%d bytes=%d\n",
      summary.requests, summary.duration,
      latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
      e.connect, e.read, e.write, e.timeout, e.status, summary.bytes))
end
