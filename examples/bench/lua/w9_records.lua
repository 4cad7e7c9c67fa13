-- W9: allocate a 3-field record (a table) per iteration, 1 000 000 times, and sum one field. Prints 1499998500000.
local function main()
  local s = 0
  for i = 0, 1000000 - 1 do
    local p = { x = i, y = i * 2, z = i * 3 }
    s = s + p.z
  end
  print(s)
end
main()
