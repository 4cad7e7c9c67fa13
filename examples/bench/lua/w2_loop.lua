-- W2 (BENCHMARKS.md): a counting loop with int arithmetic. Prints 990548.
local function main()
  local s = 0
  for i = 0, 10000000 - 1 do
    s = (s + i * i) % 1000003
  end
  print(s)
end
main()
