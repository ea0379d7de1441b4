-- Minimal init for the headless Neovim tests (nvim --headless --clean -u this file).
-- The repository's nvim/ goes on the runtimepath; test scripts load harness.lua.
local here = vim.fs.dirname(debug.getinfo(1, 'S').source:sub(2))
local repo = vim.fs.normalize(here .. '/../../..')
vim.opt.runtimepath:prepend(repo .. '/nvim')
vim.opt.swapfile = false
vim.opt.shadafile = 'NONE'
vim.opt.more = false
vim.opt.columns = 160
vim.opt.lines = 50
vim.g.open_llm_test_repo = repo
vim.g.open_llm_test_dir = here
