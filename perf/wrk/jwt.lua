-- GET / with an HS256 bearer token (made by perf/run.sh, in RW_PERF_TOKEN),
-- keep-alive: every request is authenticated by the proxy.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
local token = os.getenv("RW_PERF_TOKEN")
if token == nil or token == "" then
    error("RW_PERF_TOKEN is not set")
end
wrk.headers["Authorization"] = "Bearer " .. token
