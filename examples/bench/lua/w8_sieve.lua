-- W8: sieve of Eratosthenes over a table of booleans; counts the primes below 2 000 000. Prints 148933.
local function main()
  local n = 2000000
  local composite = {}
  for i = 0, n - 1 do
    composite[i] = false
  end
  for i = 2, n - 1 do
    if i * i >= n then break end
    if not composite[i] then
      for j = i * i, n - 1, i do
        composite[j] = true
      end
    end
  end
  local count = 0
  for k = 2, n - 1 do
    if not composite[k] then count = count + 1 end
  end
  print(count)
end
main()
