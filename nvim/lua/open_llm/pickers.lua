--- Pickers built on vim.ui.select / vim.ui.input, so Telescope, fzf-lua or snacks users get
--- their own UI: chats (open, rename, duplicate, delete, branch), chat search, presets, model.
local lsp = require('open_llm.lsp')
local status = require('open_llm.status')

local M = {}

local function date(ms)
  return type(ms) == 'number' and os.date('%Y-%m-%d %H:%M', math.floor(ms / 1000)) or ''
end

local function one_line(text, max)
  text = tostring(text or ''):gsub('%s+', ' ')
  if max and #text > max then
    text = text:sub(1, max - 1) .. '…'
  end
  return vim.trim(text)
end

local function chat_label(c)
  return ('%s%s  (%d messages, %s)'):format(
    c.pinned and '* ' or '',
    c.title,
    c.messageCount or 0,
    date(c.updatedAt)
  )
end

local function update_open_title(chat_id, title)
  local chat = require('open_llm.chat')
  chat.on_changed({ chatId = chat_id, title = title })
end

local function close_chat_buffer(chat_id)
  local chat = require('open_llm.chat')
  for bufnr, state in pairs(chat.states) do
    if state.chat_id == chat_id and vim.api.nvim_buf_is_valid(bufnr) then
      pcall(vim.api.nvim_buf_delete, bufnr, { force = true })
    end
  end
  if chat.current_chat == chat_id then
    chat.current_chat = nil
  end
end

--- Pick a message of a chat and branch a new chat from it.
---@param c table Chat
function M.branch(c)
  lsp.request(lsp.methods.chat_get, { chatId = c.id }, function(err, detail)
    if err then
      return lsp.report('could not read the chat', err)
    end
    local messages = detail.messages or {}
    if #messages == 0 then
      return vim.notify('open_llm: this chat has no messages to branch from', vim.log.levels.WARN)
    end
    vim.ui.select(messages, {
      prompt = 'Branch a new chat from (history up to this message):',
      kind = 'open_llm.message',
      format_item = function(m)
        local who = m.role == 'user' and 'You' or m.role == 'assistant' and 'Assistant' or m.role
        return ('%s: %s'):format(who, one_line(m.content, 80))
      end,
    }, function(m)
      if not m then
        return
      end
      lsp.request(lsp.methods.chat_branch, { messageId = m.id }, function(berr, result)
        if berr then
          return lsp.report('could not branch the chat', berr)
        end
        require('open_llm.chat').open(result.chat.id)
      end)
    end)
  end)
end

--- The actions on one chat.
---@param c table Chat
function M.chat_actions(c)
  local chat = require('open_llm.chat')
  local actions = {
    {
      label = 'Open',
      run = function()
        chat.open(c.id)
      end,
    },
    {
      label = 'Rename',
      run = function()
        vim.ui.input({ prompt = 'New title: ', default = c.title }, function(title)
          if not title or vim.trim(title) == '' then
            return
          end
          lsp.request(lsp.methods.chat_rename, { chatId = c.id, title = title }, function(err, r)
            if err then
              return lsp.report('could not rename the chat', err)
            end
            update_open_title(c.id, r.title)
          end)
        end)
      end,
    },
    {
      label = 'Duplicate',
      run = function()
        lsp.request(lsp.methods.chat_duplicate, { chatId = c.id }, function(err, copy)
          if err then
            return lsp.report('could not duplicate the chat', err)
          end
          chat.open(copy.id)
        end)
      end,
    },
    {
      label = 'Delete',
      run = function()
        vim.ui.select({ 'Move to the trash', 'Cancel' }, {
          prompt = ('Delete "%s"?'):format(c.title),
        }, function(choice)
          if choice ~= 'Move to the trash' then
            return
          end
          lsp.request(lsp.methods.chat_delete, { chatId = c.id }, function(err)
            if err then
              return lsp.report('could not delete the chat', err)
            end
            close_chat_buffer(c.id)
            vim.notify(('open_llm: "%s" moved to the trash'):format(c.title))
          end)
        end)
      end,
    },
    {
      label = 'Branch from a message',
      run = function()
        M.branch(c)
      end,
    },
  }
  vim.ui.select(actions, {
    prompt = ('Chat "%s":'):format(c.title),
    kind = 'open_llm.chat_action',
    format_item = function(a)
      return a.label
    end,
  }, function(action)
    if action then
      action.run()
    end
  end)
end

--- :OpenLlmChats: pick a chat (or a new one), then what to do with it.
function M.chats()
  lsp.request(lsp.methods.chat_list, { limit = 200 }, function(err, result)
    if err then
      return lsp.report('could not list the chats', err)
    end
    local items = { { new = true, title = '+ New chat' } }
    vim.list_extend(items, result.items or {})
    vim.ui.select(items, {
      prompt = ('Open LLM chats (%d):'):format(result.total or #items - 1),
      kind = 'open_llm.chat',
      format_item = function(c)
        return c.new and c.title or chat_label(c)
      end,
    }, function(c)
      if not c then
        return
      end
      if c.new then
        require('open_llm.chat').open_new()
      else
        M.chat_actions(c)
      end
    end)
  end)
end

--- :OpenLlmChatSearch {words}: full-text search over titles and messages.
---@param query string|nil
function M.search(query)
  if not query or vim.trim(query) == '' then
    vim.ui.input({ prompt = 'Search chats: ' }, function(q)
      if q and vim.trim(q) ~= '' then
        M.search(q)
      end
    end)
    return
  end
  lsp.request(lsp.methods.chat_search, { query = query }, function(err, result)
    if err then
      return lsp.report('search failed', err)
    end
    local hits = result.hits or {}
    if #hits == 0 then
      return vim.notify(('open_llm: no chat matches "%s"'):format(query), vim.log.levels.INFO)
    end
    vim.ui.select(hits, {
      prompt = ('Chats matching "%s":'):format(query),
      kind = 'open_llm.search',
      format_item = function(h)
        return ('%s — %s'):format(h.chatTitle, one_line(h.snippet, 100))
      end,
    }, function(h)
      if h then
        require('open_llm.chat').open(h.chatId)
      end
    end)
  end)
end

--- :OpenLlmPreset: pick the active preset of the first workspace folder.
function M.preset()
  lsp.request(lsp.methods.presets_list, vim.empty_dict(), function(err, result, client)
    if err then
      return lsp.report('could not list the presets', err)
    end
    local active = result.active and result.active[1] and result.active[1].presetId
    local entries = vim.tbl_filter(function(e)
      return not e.refused
    end, result.presets or {})
    vim.ui.select(entries, {
      prompt = 'Open LLM preset:',
      kind = 'open_llm.preset',
      format_item = function(e)
        local desc = e.description
            and e.description ~= ''
            and (' — ' .. one_line(e.description, 70))
          or ''
        return ('%s %s (%s, %s)%s'):format(
          e.id == active and '●' or ' ',
          e.name,
          e.id,
          e.source,
          desc
        )
      end,
    }, function(e)
      if not e then
        return
      end
      local params = { id = e.id, folderUri = e.folderUri }
      lsp.request(lsp.methods.presets_select, params, function(serr, selected)
        if serr then
          return lsp.report('could not select the preset', serr)
        end
        if client then
          status.set_preset(client.id, selected.presetId)
        end
        local msg = ('open_llm: preset "%s" active'):format(e.name)
        if selected.reloading then
          msg = msg .. '; the model is reloading'
        end
        local level = vim.log.levels.INFO
        if type(selected.modelError) == 'table' then
          msg = msg .. '; ' .. (selected.modelError.message or 'its model is not available')
          level = vim.log.levels.WARN
        end
        vim.notify(msg, level)
      end)
    end)
  end)
end

local function size(bytes)
  if type(bytes) ~= 'number' then
    return '?'
  end
  if bytes >= 1e9 then
    return ('%.1f GB'):format(bytes / 1e9)
  end
  return ('%.0f MB'):format(bytes / 1e6)
end

--- Lines describing the models in a status object.
---@param st table openLlm/status result
---@return string[]
function M.status_lines(st)
  local lines = {
    ('Open LLM LSP %s — state: %s%s'):format(
      st.version or '?',
      st.state or '?',
      st.state == 'loading' and (' %d%%'):format(st.progress or 0) or ''
    ),
  }
  local roles = st.roles or {}
  local names = vim.tbl_keys(roles)
  table.sort(names)
  for _, role in ipairs(names) do
    local r = roles[role]
    local m = type(r.model) == 'table' and r.model or {}
    table.insert(lines, '')
    table.insert(
      lines,
      ('%s model: %s [%s]'):format(role, m.name or '(not loaded)', r.state or '?')
    )
    if m.name then
      table.insert(
        lines,
        ('  %s, %s params, %s, %s, context %s/%s, license %s'):format(
          m.architecture or '?',
          m.parameters and ('%dM'):format(math.floor(m.parameters / 1e6)) or '?',
          m.quantization or '?',
          size(m.sizeBytes),
          m.contextLength or '?',
          m.trainedContextLength or '?',
          m.license or '?'
        )
      )
    end
    if r.path then
      table.insert(lines, '  ' .. r.path .. (r.bundled and ' (bundled)' or ''))
    end
    if type(r.error) == 'table' then
      table.insert(lines, ('  error (%s): %s'):format(r.error.kind or '?', r.error.message or ''))
    end
  end
  if st.tokensPerSecond then
    table.insert(lines, '')
    table.insert(lines, ('last generation: %.1f tokens/s'):format(st.tokensPerSecond))
  end
  for _, p in ipairs(st.settingsProblems or {}) do
    table.insert(lines, 'settings problem: ' .. p)
  end
  return lines
end

--- Show lines in a scratch window at the bottom (q closes it).
---@param title string
---@param lines string[]
---@return integer bufnr
function M.show_info(title, lines)
  local bufnr = vim.api.nvim_create_buf(false, true)
  vim.bo[bufnr].bufhidden = 'wipe'
  vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, vim.list_extend({ '# ' .. title, '' }, lines))
  vim.bo[bufnr].modifiable = false
  vim.bo[bufnr].filetype = 'markdown'
  vim.api.nvim_open_win(bufnr, true, {
    split = 'below',
    win = -1,
    height = math.min(#lines + 3, math.floor(vim.o.lines / 2)),
  })
  vim.keymap.set('n', 'q', '<cmd>close<cr>', { buffer = bufnr, nowait = true })
  return bufnr
end

--- Ask to accept a restricted license; `cb(true)` once accepted (or when none is needed).
---@param license table|nil License record
---@param cb fun(accepted: boolean)
function M.accept_license(license, cb)
  if type(license) ~= 'table' or not license.restricted or license.accepted then
    return cb(true)
  end
  local accept = ('Accept the %s'):format(license.name or license.id)
  local terms = ('Show the terms (%s)'):format(license.url or 'no link')
  vim.ui.select({ accept, terms, 'Cancel' }, {
    prompt = ('This model is under the %s:'):format(license.name or license.id),
    kind = 'open_llm.license',
  }, function(choice)
    if choice == accept then
      lsp.request(lsp.methods.models_accept_license, { license = license.id }, function(err)
        if err then
          lsp.report('could not accept the license', err)
          return cb(false)
        end
        cb(true)
      end)
    elseif choice == terms then
      if license.url then
        vim.ui.open(license.url)
      end
      M.accept_license(license, cb)
    else
      cb(false)
    end
  end)
end

local ROLES = { 'chat', 'completion' }

--- Use a local model for a role (openLlm/models/select).
---@param model table LocalModel
function M.use_local(model)
  vim.ui.select(ROLES, {
    prompt = ('Use %s for:'):format(model.name or model.file),
    kind = 'open_llm.role',
    format_item = function(role)
      return role == 'chat' and 'Chat' or 'Inline completion'
    end,
  }, function(role)
    if not role then
      return
    end
    M.accept_license(model.license, function(ok)
      if not ok then
        return
      end
      local params = { role = role, model = model.spec }
      lsp.request(lsp.methods.models_select, params, function(err, result)
        if err then
          return lsp.report('could not select the model', err)
        end
        M.last_selected = result
        vim.notify(
          ('open_llm: %s model: %s%s'):format(
            role,
            model.name or model.file,
            result.reloading and ' (loading)' or ''
          )
        )
      end)
    end)
  end)
end

--- Download a model (with progress in the statusline and the echo area), optionally
--- selecting it for a role once downloaded.
---@param spec string OWNER/REPO[:QUANT|:FILE]
---@param role string|nil
---@param license table|nil
function M.download(spec, role, license)
  M.accept_license(license, function(ok)
    if not ok then
      return
    end
    vim.notify(('open_llm: downloading %s…'):format(spec))
    local params = {
      model = spec,
      downloadId = spec,
      acceptLicense = license ~= nil and license.restricted or nil,
      select = role,
    }
    status.download_started(spec)
    lsp.request(lsp.methods.models_download, params, function(err, result)
      status.download_done(spec)
      if err then
        if err.code == lsp.codes.cancelled then
          return vim.notify(('open_llm: download of %s cancelled'):format(spec))
        end
        return lsp.report('download failed', err)
      end
      M.last_download = result
      vim.notify(
        ('open_llm: downloaded %s (%s)%s'):format(
          result.spec or spec,
          size(result.total),
          result.selected and (', now used for ' .. role) or ''
        )
      )
    end)
  end)
end

--- Show the fit table of a Hub repository, then offer to download its best file.
---@param repo string OWNER/REPO
---@param role string|nil the role to select it for
function M.fit(repo, role)
  vim.notify(('open_llm: reading %s from the Hub…'):format(repo))
  lsp.request(lsp.methods.models_fit, { repo = repo }, function(err, result)
    if err then
      return lsp.report('could not read ' .. repo, err)
    end
    M.last_fit = result
    local lines = vim.split(result.table or '', '\n', { plain = true })
    if result.license then
      table.insert(lines, '')
      table.insert(
        lines,
        ('license: %s%s'):format(
          result.license.name or result.license.id,
          result.license.restricted and ' (must be accepted)' or ''
        )
      )
    end
    local fit = result.fit or {}
    if fit.message then
      table.insert(lines, fit.message)
    end
    M.show_info(repo, lines)
    local choice = fit.choice
    if not choice or not result.spec then
      return vim.notify(
        ('open_llm: no file of %s fits this machine'):format(repo),
        vim.log.levels.WARN
      )
    end
    local download = ('Download %s (%s)%s'):format(
      result.spec,
      size(choice.size),
      role and (' and use it for ' .. role) or ''
    )
    vim.ui.select({ download, 'Cancel' }, {
      prompt = ('%s: %s'):format(repo, choice.label or ''),
      kind = 'open_llm.download',
    }, function(c)
      if c == download then
        M.download(result.spec, role, result.license)
      end
    end)
  end)
end

local function entry_label(e)
  if e.kind == 'local' then
    local m = e.model
    local lic = '?'
    if m.license then
      local pending = m.license.restricted and not m.license.accepted
      lic = m.license.id .. (pending and ' (not accepted)' or '')
    end
    return ('%s %s · %s · %s · %s · %s%s'):format(
      e.in_use and '●' or ' ',
      m.name or m.file,
      m.quant or '?',
      size(m.size),
      m.source or 'local',
      'license ' .. lic,
      e.in_use and (' · ' .. e.in_use) or ''
    )
  elseif e.kind == 'catalog' then
    local c = e.entry
    return ('↓ %s (%s, %.1fB, license %s)%s'):format(
      c.name,
      c.role,
      c.parameters or 0,
      c.license and c.license.id or '?',
      c.notes and (' — ' .. one_line(c.notes, 60)) or ''
    )
  end
  return e.label
end

--- :OpenLlmModel: models in use, local models (use for chat or completion), the catalogue
--- (fit table, license, download with progress), a Hub repository, recommendations.
function M.model()
  lsp.request(lsp.methods.status, vim.empty_dict(), function(err, st)
    if err then
      return lsp.report('could not read the status', err)
    end
    lsp.request(lsp.methods.models_list, vim.empty_dict(), function(merr, list)
      local info = M.status_lines(st)
      if merr then
        table.insert(info, '')
        if merr.code == lsp.codes.method_not_found then
          table.insert(
            info,
            'This server does not offer model management (openLlm/models/*): set '
              .. 'openLlm.model / openLlm.completion.model to a .gguf file or a Hugging Face '
              .. 'owner/repo:QUANT in your cache.'
          )
        else
          table.insert(info, 'models: ' .. lsp.error_text(merr))
        end
        M.last_info = info
        return M.show_info('Open LLM model', info)
      end
      local active = list.active or {}
      local entries = {}
      for _, spec in ipairs(status.downloads()) do
        table.insert(
          entries,
          { kind = 'cancel', spec = spec, label = 'Cancel the download of ' .. spec }
        )
      end
      table.insert(entries, { kind = 'status', label = 'Models in use and their state' })
      for _, m in ipairs(list.models or {}) do
        local roles = {}
        for _, role in ipairs(ROLES) do
          if active[role] and active[role] == m.path then
            table.insert(roles, role)
          end
        end
        table.insert(entries, {
          kind = 'local',
          model = m,
          in_use = #roles > 0 and table.concat(roles, ' + ') or nil,
        })
      end
      for _, c in ipairs(list.catalog or {}) do
        if not c.cached then
          table.insert(entries, { kind = 'catalog', entry = c })
        end
      end
      table.insert(
        entries,
        { kind = 'repo', label = 'Download from a Hub repository (OWNER/REPO)…' }
      )
      table.insert(entries, { kind = 'recommend', label = 'What fits this machine best' })
      M.last_entries = entries
      vim.ui.select(entries, {
        prompt = 'Open LLM models:',
        kind = 'open_llm.model',
        format_item = entry_label,
      }, function(e)
        if not e then
          return
        end
        if e.kind == 'status' then
          M.last_info = info
          M.show_info('Open LLM model', info)
        elseif e.kind == 'cancel' then
          lsp.request(lsp.methods.models_cancel_download, { downloadId = e.spec }, function() end)
        elseif e.kind == 'local' then
          M.use_local(e.model)
        elseif e.kind == 'catalog' then
          M.fit(e.entry.repo, e.entry.role)
        elseif e.kind == 'repo' then
          vim.ui.input({ prompt = 'Hub repository (OWNER/REPO): ' }, function(repo)
            if repo and vim.trim(repo) ~= '' then
              M.fit(vim.trim(repo), nil)
            end
          end)
        elseif e.kind == 'recommend' then
          lsp.request(lsp.methods.models_recommend, vim.empty_dict(), function(rerr, rec)
            if rerr then
              return lsp.report('could not recommend a model', rerr)
            end
            M.last_info = vim.split(rec.text or '', '\n', { plain = true })
            M.show_info('What fits this machine', M.last_info)
          end)
        end
      end)
    end)
  end)
end

return M
