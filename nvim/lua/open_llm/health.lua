--- :checkhealth open_llm — Neovim version and inline completion support, the server
--- command and its version, the model state and settings problems.
local M = {}

local function version_cmd(cmd)
  -- `python -m lsp_server ...` -> `python -m lsp_server --version`;
  -- `open-llm-lsp ...` -> `open-llm-lsp --version`.
  if cmd[2] == '-m' and cmd[3] then
    return { cmd[1], '-m', cmd[3], '--version' }
  end
  return { cmd[1], '--version' }
end

local function check_neovim(h)
  h.start('open_llm: Neovim')
  local v = vim.version()
  if vim.fn.has('nvim-0.11') == 1 then
    h.ok(('Neovim %s'):format(tostring(v)))
  else
    h.error(
      ('Neovim %s is too old: open_llm needs 0.11+ (vim.lsp.config)'):format(tostring(v)),
      { 'Install Neovim 0.12 for inline completion' }
    )
  end
  if require('open_llm.lsp').inline_supported() then
    h.ok('inline completion: native (vim.lsp.inline_completion)')
  else
    h.warn('inline completion needs Neovim 0.12+; chat and the pickers work', {
      'Upgrade to Neovim 0.12, or use regular LSP completion (<C-x><C-o>): the model answers it',
    })
  end
end

local function check_server(h, opts)
  h.start('open_llm: server')
  local cmd = opts.cmd
  if vim.fn.executable(cmd[1]) == 0 then
    h.error(('server command not found: %s'):format(cmd[1]), {
      'pip install open-llm-lsp (gives the `open-llm-lsp` command)',
      "or setup({ cmd = { 'python3', '-m', 'lsp_server' } }) with the package installed",
    })
    return false
  end
  local ok, result = pcall(function()
    return vim.system(version_cmd(cmd), { text = true, env = opts.cmd_env }):wait(30000)
  end)
  if ok and result.code == 0 then
    h.ok(('server: %s (%s)'):format(vim.trim(result.stdout or ''), table.concat(cmd, ' ')))
  else
    local why = ok and vim.trim((result.stderr or '') .. (result.stdout or '')) or tostring(result)
    h.error(('`%s` failed: %s'):format(table.concat(version_cmd(cmd), ' '), why))
    return false
  end
  return true
end

local function check_client(h)
  local lsp = require('open_llm.lsp')
  h.start('open_llm: model')
  local client = lsp.client()
  if not client then
    h.info('the server is not running: it starts when you open a file (or run :OpenLlmChat)')
    return
  end
  local info = client.server_info or {}
  h.ok(
    ('client %d attached, server %s %s, workspace %s'):format(
      client.id,
      info.name or '?',
      info.version or '?',
      client.root_dir or '(none)'
    )
  )
  local response = client:request_sync(lsp.methods.status, vim.empty_dict(), 10000)
  if not response or response.err then
    h.error('openLlm/status failed: ' .. lsp.error_text(response and response.err or 'timeout'))
    return
  end
  local st = lsp.strip_nulls(response.result)
  local roles = st.roles or {}
  local names = vim.tbl_keys(roles)
  table.sort(names)
  for _, role in ipairs(names) do
    local r = roles[role]
    local name = type(r.model) == 'table' and r.model.name or r.path or '?'
    local text = ('%s model: %s (%s)'):format(role, name, r.state or '?')
    if r.state == 'ready' then
      h.ok(text)
    elseif r.state == 'error' then
      local e = type(r.error) == 'table' and r.error or {}
      h.error(('%s: %s'):format(text, e.message or st.message or 'failed to load'), {
        'Fix openLlm.model / openLlm.completion.model; the server reloads when settings change',
      })
    elseif type(r.error) == 'table' then
      -- e.g. "disabled" by a license that is not accepted yet
      h.warn(('%s: %s'):format(text, r.error.message or r.error.kind or '?'), {
        'Accept it from :OpenLlmModel or with openLlm.models.acceptedLicenses (e.g. { "gemma" })',
      })
    elseif r.state == 'loading' then
      h.info(('%s, %d%%'):format(text, r.progress or 0))
    else
      h.info(text)
    end
  end
  if #names == 0 then
    h.info(('model state: %s'):format(st.state or '?'))
  end
  if st.bundled then
    h.info('the bundled demo model is in use: set openLlm.model for better answers')
  end
  local problems = st.settingsProblems or {}
  if #problems == 0 then
    h.ok('settings: no problems')
  end
  for _, p in ipairs(problems) do
    h.warn('settings: ' .. p, { 'This value was ignored; its default is used' })
  end
end

function M.check()
  local h = vim.health
  local config = require('open_llm.config')
  local opts = config.options
  check_neovim(h)
  if not opts then
    h.warn("setup() has not been called: require('open_llm').setup({})")
    opts = config.defaults
  else
    h.ok('setup() done')
  end
  if check_server(h, opts) then
    check_client(h)
  end
end

return M
