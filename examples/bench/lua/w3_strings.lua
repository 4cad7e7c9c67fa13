-- W3 (BENCHMARKS.md): build 300 000 strings, join them, print the length. Prints 2288889.
local function main()
  local parts = {}
  for i = 0, 300000 - 1 do
    parts[i + 1] = "k" .. i
  end
  local joined = table.concat(parts, ",")
  print(#joined)
end
main()
