-- wrk script: each request carries the next access token of the pool (a file, one per line),
-- round robin, so the server verifies many distinct tokens rather than one.
local tokens = {}
local i = 0

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
  assert(#tokens > 0, "no tokens in " .. args[1])
end

function request()
  i = i % #tokens + 1
  local headers = {}
  for k, v in pairs(wrk.headers) do headers[k] = v end
  headers["Authorization"] = "Bearer " .. tokens[i]
  return wrk.format(nil, nil, headers)
end
