-- wrk script: each request carries the next access token of the pool (a file, one per line),
-- round robin, so the server sees many distinct tokens rather than one. The requests are built
-- once per thread, in init(): building one per request would cost the load generator more than
-- the server (the control run drives bare axum with the same script).
local requests = {}
local i = 0

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      local headers = {}
      for k, v in pairs(wrk.headers) do headers[k] = v end
      headers["Authorization"] = "Bearer " .. line
      requests[#requests + 1] = wrk.format(nil, nil, headers)
    end
  end
  assert(#requests > 0, "no tokens in " .. args[1])
end

function request()
  i = i % #requests + 1
  return requests[i]
end
