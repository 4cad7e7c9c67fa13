-- W7 (BENCHMARKS.md): map, filter and fold with closures over a million ints. Prints 749998500000.
local function map(t, f)
  local r = {}
  for i = 1, #t do r[i] = f(t[i]) end
  return r
end

local function filter(t, f)
  local r, n = {}, 0
  for i = 1, #t do
    local v = t[i]
    if f(v) then n = n + 1; r[n] = v end
  end
  return r
end

local function fold(t, init, f)
  local acc = init
  for i = 1, #t do acc = f(acc, t[i]) end
  return acc
end

local function main()
  local xs = {}
  for i = 0, 1000000 - 1 do xs[i + 1] = i end
  local total = fold(filter(map(xs, function(x) return x * 3 end),
    function(x) return x % 2 == 0 end), 0, function(acc, x) return acc + x end)
  print(total)
end
main()
