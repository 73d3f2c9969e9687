-- wrk: v2 GET of the 1000 keys that bench/compare.sh preloads
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/v2/keys/bench/k" .. (n % 1000))
end
