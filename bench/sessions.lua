-- wrk script for bench/run.sh: every request belongs to one of the sticky
-- sessions listed in the sessions file given after "--" on wrk's command
-- line, one "<backend> <Cookie header value>" per line. Request i of a
-- thread uses session (i + offset) mod SESSIONS and carries the session's
-- cookie plus "X-Expect-Backend: <backend>"; the bench backends answer 409
-- when that names another backend, so any request the proxy sends to the
-- wrong backend shows up in wrk's "Non-2xx or 3xx responses".
--
-- Without a sessions file (the "direct" and "https-new" runs) it sends a
-- plain GET /, through the same Lua path so that wrk costs the same in
-- every run. A second argument "close" adds "Connection: close" to every
-- request, so that each has a connection (and a TLS handshake) of its own.

local threads = 0

function setup(thread)
   thread:set("id", threads)
   threads = threads + 1
end

local reqs = {}
local n = 0
local i = 0

function init(args)
   local file = args[1]
   local close = args[2] == "close"
   if file ~= nil and file ~= "" then
      for line in io.lines(file) do
         local backend, cookie = line:match("^(%S+)%s+(.-)%s*$")
         if backend ~= nil and cookie ~= "" then
            n = n + 1
            local headers = {
               ["Cookie"] = cookie,
               ["X-Expect-Backend"] = backend,
            }
            if close then
               headers["Connection"] = "close"
            end
            reqs[n] = wrk.format("GET", "/", headers)
         end
      end
      if n == 0 then
         error("no sessions in " .. file)
      end
   else
      n = 1
      reqs[1] = wrk.format("GET", "/", close and { ["Connection"] = "close" } or {})
   end
   -- Threads start at different sessions so they do not move in lockstep.
   i = ((id or 0) * 7919) % n
end

function request()
   i = i + 1
   return reqs[(i % n) + 1]
end
