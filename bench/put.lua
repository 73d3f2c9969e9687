-- wrk: v2 PUT of 64-byte values over 1000 keys (form body, as curl -d sends it)
local value = string.rep("x", 64)
local n = 0
request = function()
  n = n + 1
  return wrk.format("PUT", "/v2/keys/bench/k" .. (n % 1000),
    {["Content-Type"] = "application/x-www-form-urlencoded"}, "value=" .. value)
end
