-- User commands of open_llm (the modules load on first use). See :help open_llm.
if vim.g.loaded_open_llm then
  return
end
vim.g.loaded_open_llm = true

require('open_llm.commands').define()
