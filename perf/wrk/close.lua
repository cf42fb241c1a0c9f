-- A new TCP connection for every request: the client asks for
-- "Connection: close", the server closes after answering, wrk reconnects.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
wrk.headers["Connection"] = "close"
