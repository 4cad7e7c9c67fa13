-- W6 (BENCHMARKS.md): a coroutine yields 0..1 000 000 to a consumer that sums them.
-- Prints 499999500000. Uses coroutine.wrap, as BENCHMARKS.md says.
local function produce(n)
  for i = 0, n - 1 do
    coroutine.yield(i)
  end
end

local function main()
  local next_value = coroutine.wrap(function() produce(1000000) end)
  local sum = 0
  while true do
    local v = next_value()
    if v == nil then break end
    sum = sum + v
  end
  print(sum)
end
main()
